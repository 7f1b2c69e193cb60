# The live-server fixtures, shared with the MCP tests: both tests here use the module's one server.
from tests.mcp.conftest import live, shared_server  # noqa: F401
