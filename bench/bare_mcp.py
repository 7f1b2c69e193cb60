"""The baseline of `bench/mcp.py`: a bare official-SDK MCP server, nothing of Avtrz.

Stateless streamable HTTP with JSON responses, as Avtrz serves it, and one tool, `get_profile_avatar`,
that answers any call with the same picture Avtrz answers (the file named by BARE_MCP_IMAGE, ~10 KB of
WEBP) inline, a line of text and a few structured fields: no authentication, no Django, no cache, no
meter. Run: `BARE_MCP_IMAGE=photo.webp uvicorn bench.bare_mcp:app`.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from mcp.server import MCPServer
from mcp_types import CallToolResult, ImageContent, TextContent


IMAGE = base64.b64encode(Path(os.environ["BARE_MCP_IMAGE"]).read_bytes()).decode("ascii")

# Quiet as Avtrz runs it (MCP_LOG_LEVEL): at INFO the SDK logs a line per request.
server = MCPServer(name="bare", log_level="WARNING")


@server.tool()
async def get_profile_avatar(username: str, size: int = 256) -> CallToolResult:
    structured = {"status": "resolved", "handle": username, "size": size, "mimeType": "image/webp"}
    return CallToolResult(
        content=[
            TextContent(type="text", text=f"Profile photo of {username}, {size} px."),
            ImageContent(type="image", data=IMAGE, mime_type="image/webp"),
        ],
        structured_content=structured,
    )


app = server.streamable_http_app(stateless_http=True, json_response=True)
