"""The Avtrz MCP server: who it says it is, and its three read-only tools.

Tools are thin: they read the bound workspace from the request, run the synchronous lookup in
`mcpserver.lookups` from this process's memory on the event loop when it can (a cached profile's
photo), else on a thread of the warm lane when the caches can answer it, else of the cold lane
(`mcpserver.lanes`), and turn a failure into an error result the model can read. Nothing else (no
traceback, no exception text) ever reaches the client.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from django.conf import settings
from django.contrib.staticfiles import finders
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult, Icon, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError, WithJsonSchema

from avtrz.avatars.api import SIZES
from avtrz.avatars.services import NeedsDatabase
from mcpserver import lanes, lookups
from mcpserver.arguments import unknown_arguments, validation_message
from mcpserver.auth import bound_connection
from workspaces.models import Workspace


logger = logging.getLogger(__name__)

NAME = "avtrz"
VERSION = "1.0.0"
INSTRUCTIONS = """\
Avtrz resolves business profiles (LinkedIn) to real profile photos and public profile data.
- get_profile_avatar: the person's photo inline, plus a durable imageUrl to paste into documents, CRMs, emails \
or <img> tags.
- get_profile: name, headline, summary, industry, location, open-to-work and a picture URL.
- get_publishable_key: the workspace's publishable key and a URL template, to build many image URLs without a call each.
Pass exactly one of linkedin_url or username. A profile Avtrz has never seen is fetched on the first request: \
if the result says "enriching", initials are shown for now and the same URL shows the photo a few seconds later.
Every lookup counts against the connected workspace's monthly quota."""

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
if TYPE_CHECKING:
    Size = int  # a Literal built from a tuple is beyond the type checker
else:
    Size = Literal[SIZES]  # Literal of a tuple is Literal of its items


def _no_default(schema: dict[str, Any]) -> None:
    """Drop `"default": null` from an optional string's schema: null is not a string, and strict
    validators (and some clients' tool schemas) refuse a default its own type does not allow."""
    schema.pop("default", None)


# Optional, yet described as plain strings: "absent" is how a model leaves one out, never null.
LinkedInUrl = Annotated[
    str | None,
    WithJsonSchema(
        {
            "type": "string",
            "description": "Full LinkedIn profile URL, e.g. https://www.linkedin.com/in/janedoe. "
            "Pass exactly one of linkedin_url or username.",
        }
    ),
    Field(json_schema_extra=_no_default),
]
Username = Annotated[
    str | None,
    WithJsonSchema(
        {
            "type": "string",
            "description": "LinkedIn vanity username (the part after /in/), e.g. janedoe. "
            "Pass exactly one of linkedin_url or username.",
        }
    ),
    Field(json_schema_extra=_no_default),
]
Status = Literal["resolved", "enriching", "not_found", "opted_out"]


class AvatarOutput(BaseModel):
    status: Status = Field(
        description="resolved: the photo; enriching: initials while Avtrz fetches the profile; "
        "not_found: no such profile, initials; opted_out: the person asked to be removed, no image and no data."
    )
    handle: str = Field(description="The canonical LinkedIn username.")
    profileUrl: str = Field(description="The canonical LinkedIn profile URL.")
    name: str = Field(description="The person's name, when known.")
    size: int = Field(description="Width and height of the image, in pixels.")
    mimeType: str | None = Field(
        default=None,
        description="Type of the inline image: image/webp for a photo, image/png for initials; "
        "absent when there is no image (opted_out).",
    )
    imageUrl: str | None = Field(
        default=None,
        description="Durable Avtrz image URL (redirects to the current photo, or initials until there is one). "
        "Absent if the workspace's publishable key could not be had, and for opted_out.",
    )


class ProfileOutput(BaseModel):
    status: Status
    handle: str
    profileUrl: str
    name: str
    headline: str
    summary: str
    industry: str
    location: str
    openToWork: bool | None = Field(description="Whether the person says they are open to work; null if unknown.")
    pictureUrl: str | None = Field(
        default=None, description=f"Durable Avtrz image URL of the profile photo, {lookups.PICTURE_SIZE} px."
    )


class KeyOutput(BaseModel):
    workspace: str
    publishableKey: str = Field(description="The workspace's publishable key (pk_live_…), safe to put in URLs.")
    urlTemplate: str = Field(description="Replace {linkedin_url} (URL-encoded) and {size}.")
    usernameUrlTemplate: str = Field(description="Replace {username} and {size}.")
    sizes: list[int]
    defaultSize: int


class AvtrzServer(MCPServer):
    """MCPServer with argument errors in plain words, an unknown tool a JSON-RPC error (-32602), and
    advertising only what it serves: tools."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The SDK derives capabilities from the registered handlers, and MCPServer registers prompt
        # and resource handlers that only ever list nothing: advertised, every client would ask for
        # the empty lists on each connect. Unregistered, initialize and server/discover advertise
        # tools only, and a client that asks anyway is told "method not found".
        handlers = self._lowlevel_server._request_handlers
        for method in [name for name in handlers if name.startswith(("prompts/", "resources/"))]:
            del handlers[method]

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        tool = self._tool_manager.get_tool(name)
        if tool is None:
            # A protocol error in every spec version, not a tool result (the SDK's ToolError would be
            # one): the client's tool list is wrong, and a model could only retry the same call.
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {name}")
        problem = unknown_arguments(name, tool.parameters, arguments)
        if problem:
            raise ToolError(problem)
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                cause = exc.__cause__
                raise ToolError(validation_message(name, tool.parameters, cause)) from cause
            raise


def build_server() -> MCPServer:
    server = AvtrzServer(
        name=NAME,
        title="Avtrz",
        description="Real profile photos and public profile data for business profiles, by LinkedIn URL.",
        instructions=INSTRUCTIONS,
        website_url=settings.PUBLIC_BASE_URL,
        icons=[_logo()],
        version=VERSION,
        # No `subscriptions/listen` (2026-07-28): the tool list never changes, so a listen stream would
        # only hold a connection open; unserved, it answers "method not found" and discovery
        # advertises no listChanged.
        subscriptions=False,
    )

    @server.tool(
        title="Get profile photo",
        description="Fetch the avatar image for a business profile by LinkedIn URL or username. Returns the photo "
        "as an inline image and a durable imageUrl. While the avatar is still being enriched, it returns "
        "deterministic initials art and the URL where the final image will appear.",
        annotations=READ_ONLY,
    )
    async def get_profile_avatar(
        ctx: Context,
        linkedin_url: LinkedInUrl = None,
        username: Username = None,
        size: Annotated[Size, Field(description="Square image size in pixels.")] = lookups.PICTURE_SIZE,
    ) -> Annotated[CallToolResult, AvatarOutput]:
        return await _call(
            ctx,
            "get_profile_avatar",
            lookups.profile_avatar,
            linkedin_url,
            username,
            size,
            in_memory=lookups.cached_profile_avatar,
            warm_if=lookups.avatar_answerable_from_cache,
        )

    @server.tool(
        title="Get profile",
        description="Look up a business profile by LinkedIn URL or username: name, headline, summary, industry, "
        "location, open-to-work and a durable picture URL, as data and as a Markdown block.",
        annotations=READ_ONLY,
    )
    async def get_profile(
        ctx: Context, linkedin_url: LinkedInUrl = None, username: Username = None
    ) -> Annotated[CallToolResult, ProfileOutput]:
        return await _call(ctx, "get_profile", lookups.profile, linkedin_url, username)

    @server.tool(
        title="Get publishable key",
        description="The connected workspace's publishable avatar key and a URL template for durable image URLs "
        "(<img src>, CRMs, documents), with the allowed sizes. Creates the key on first use.",
        annotations=READ_ONLY,
    )
    async def get_publishable_key(ctx: Context) -> Annotated[CallToolResult, KeyOutput]:
        return await _call(
            ctx, "get_publishable_key", lookups.publishable_key, warm_if=lookups.key_answerable_from_cache
        )

    return server


def _logo() -> Icon:
    """The logo inline (a data: URI), so a client shows it without fetching from us, whatever the static setup."""
    found = finders.find("img/logo.svg")
    assert found is not None  # static/img/logo.svg ships with the app
    svg = Path(found).read_bytes()
    return Icon(
        src=f"data:image/svg+xml;base64,{base64.b64encode(svg).decode()}", mime_type="image/svg+xml", sizes=["any"]
    )


async def _call(
    ctx: Context,
    name: str,
    lookup: Callable[..., lookups.Result],
    *args: Any,
    in_memory: Callable[..., lookups.Result] | None = None,
    warm_if: Callable[..., bool] | None = None,
) -> CallToolResult:
    """Run ``lookup(workspace, *args)`` where it costs least: as ``in_memory`` on the event loop when
    this process's memory answers it; else on the warm lane when ``warm_if`` says the caches can
    (asked there: Redis is I/O); else on the cold lane."""
    request = ctx.request_context.request
    assert request is not None  # tools are called over HTTP only
    workspace: Workspace = bound_connection(request.scope).workspace
    try:
        result = _from_memory(in_memory, workspace, *args) if in_memory else None
        if result is None and warm_if:
            result = await lanes.warm().run(_if_warm, warm_if, lookup, workspace, *args)
        if result is None:
            result = await lanes.cold().run(lookup, workspace, *args)
    except lookups.ToolFailure as exc:
        return _error(str(exc))
    except Exception:
        logger.exception("MCP tool %s failed for workspace %s", name, workspace.pk)
        return _error("Avtrz could not answer this request right now. Try again in a moment.")
    return CallToolResult(content=result.content, structured_content=result.structured)


def _from_memory(in_memory: Callable[..., lookups.Result], *args: Any) -> lookups.Result | None:
    try:
        return in_memory(*args)
    except NeedsDatabase:
        return None


def _if_warm(warm_if: Callable[..., bool], lookup: Callable[..., lookups.Result], *args: Any) -> lookups.Result | None:
    return lookup(*args) if warm_if(*args) else None


def _error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
