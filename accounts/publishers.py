"""Recognising well-known AI clients on the consent screen.

A client names itself at registration, and anyone can register "Claude". What a stranger
cannot do is receive a redirect at claude.ai: the authorization code goes only to the redirect
URI of the request, so that URI (never the client name) is what identifies the publisher.

Loopback callbacks (``http://127.0.0.1:<port>/``, ``http://localhost:<port>/callback``) are
shared by every desktop tool and prove nothing, so they never make a client verified. The MCP
Inspector's fixed ``localhost:6274`` paths are the one listed exception: its port is part of the
tool, and a code sent there stays on the user's machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Publisher:
    name: str
    vendor: str
    verified: bool


_KNOWN: tuple[tuple[Publisher, re.Pattern[str]], ...] = tuple(
    (Publisher(name, vendor, verified=True), re.compile(pattern))
    for name, vendor, pattern in (
        ("Claude", "Anthropic", r"https://claude\.(ai|com)/api/mcp/auth_callback"),
        (
            "ChatGPT",
            "OpenAI",
            r"https://chatgpt\.com/(connector_platform_oauth_redirect|connector/oauth/[A-Za-z0-9_-]+)",
        ),
        (
            "Cursor",
            "Anysphere",
            r"(cursor://anysphere\.cursor-mcp/oauth/callback|https://www\.cursor\.com/agents/mcp/oauth/callback)",
        ),
        ("VS Code", "Microsoft", r"https://(insiders\.)?vscode\.dev/redirect"),
        ("MCP Inspector", "Model Context Protocol", r"http://localhost:6274/oauth/callback(/debug)?"),
    )
)


def recognise(redirect_uri: str, client_name: str) -> Publisher:
    """The verified publisher behind ``redirect_uri``, else the client's own (unverified) name."""
    for publisher, pattern in _KNOWN:
        if pattern.fullmatch(redirect_uri):
            return publisher
    return Publisher(name=client_name.strip() or "An unnamed app", vendor="", verified=False)
