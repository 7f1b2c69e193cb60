from tests.mcp.conftest import serve  # noqa: F401  (the live-server fixture, shared with the MCP tests)
