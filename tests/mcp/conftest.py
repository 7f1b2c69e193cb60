"""A live Avtrz server (one per module where the tests need nothing but the default settings, else one
per test), a signed-in user, and the MCP SDK's own client connecting to it through the whole OAuth dance
(discovery, registration, PKCE, consent)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pytest
import requests
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from avtrz.avatars.directory import import_profile
from avtrz.avatars.models import Profile
from tests import services
from tests.avatars.conftest import IMAGES
from tests.oauth.oauthutil import consent_decision, query


T = TypeVar("T")
REDIRECT_URI = "http://127.0.0.1:53682/callback"
EILEEN = {
    "handle": "eileen-collins",
    "name": "Eileen Collins",
    "headline": "Retired NASA astronaut",
    "summary": "First woman to pilot and command a Space Shuttle.",
    "industry": "Aviation and Aerospace",
    "location": "Houston, Texas",
    "open_to_work": "false",
    "photo_file": "face.jpg",
}


@pytest.fixture
def directory(db):
    return import_profile(dict(EILEEN), base_dir=IMAGES)


@pytest.fixture
def serve(tmp_path, settings):
    """Start the real ASGI app (uvicorn) on the test database; yields its base URL.

    This process validates and edits the tokens the server issues, so it takes the same public
    URL (the tokens' audience), and the same cache namespace, so the server hears the revocations
    it makes. Images go to the test's media folder, shared with the server.
    """

    @contextmanager
    def _serve(*, port: int | None = None, workers: int = 1, public_base_url: str | None = None, **env: str):
        port = port or services.free_port()
        base = public_base_url or f"http://127.0.0.1:{port}"
        settings.PUBLIC_BASE_URL = base
        environment = services.server_env(
            PUBLIC_BASE_URL=base,
            MEDIA_ROOT=str(settings.MEDIA_ROOT),
            **{"CELERY_TASK_ALWAYS_EAGER": "true", **services.shared_cache_env(), **env},
        )
        log = tmp_path / f"server-{port}.log"
        with services.running(services.uvicorn_cmd(port, workers=workers), env=environment, port=port, log=log):
            yield f"http://127.0.0.1:{port}"

    return _serve


@dataclass(frozen=True)
class SharedServer:
    base: str
    media_root: Path
    counter_prefix: str


@pytest.fixture(scope="module")
def shared_server(django_db_setup, tmp_path_factory) -> Iterator[SharedServer]:
    """One server for the module's tests that need nothing but the default settings on the test database
    (`live` puts a test on it): a server's start costs seconds of CPU, mostly imports.

    It outlives each test's database (flushed after each, so ids are never reused) with its caches: what
    it keeps is keyed by ids, by random tokens and keys, or by a profile's handle, which `profile` makes
    fresh for each test (without Redis the whole cache is in the server's memory, where this process's
    invalidations never reach)."""
    from django.conf import settings

    folder = tmp_path_factory.mktemp("server")
    counter_prefix = f"test:{uuid.uuid4().hex}:"
    with services.module_server(
        folder,
        CELERY_TASK_ALWAYS_EAGER="true",
        CACHE_KEY_PREFIX=settings.CACHES["default"].get("KEY_PREFIX", ""),
        AVTRZ_COUNTER_PREFIX=counter_prefix,
    ) as base:
        yield SharedServer(base=base, media_root=folder / "media", counter_prefix=counter_prefix)


@pytest.fixture
def live(shared_server, settings) -> str:
    """The module's shared server for this test; returns its base URL. This process takes the server's
    public URL (the tokens' audience), media folder and cache namespace (so the server hears the
    revocations it makes): `serve` gives its server the test's, here the test takes the server's."""
    settings.PUBLIC_BASE_URL = shared_server.base
    settings.MEDIA_ROOT = shared_server.media_root
    settings.AVTRZ_COUNTER_PREFIX = shared_server.counter_prefix
    return shared_server.base


@pytest.fixture
def profile(live, db) -> Profile:
    """Eileen Collins under a handle of this test's own, in the shared server's media folder: a card the
    server cached for a handle an earlier test used must not answer for this test's profile."""
    return import_profile({**EILEEN, "handle": f"eileen-collins-{uuid.uuid4().hex[:8]}"}, base_dir=IMAGES)


@dataclass
class MemoryStorage:
    """The SDK client's token storage, kept so a test can inspect and reuse what it was issued."""

    tokens: OAuthToken | None = None
    client_info: OAuthClientInformationFull | None = None
    authorizations: list[str] = field(default_factory=list)

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def oauth_provider(mcp_url: str, browser: requests.Session, storage: MemoryStorage, workspace: str | None):
    """The SDK's OAuth provider; the user's browser opens the authorization URL and approves."""
    redirect: dict[str, str] = {}

    def approve(url: str) -> str:
        page = browser.get(url, allow_redirects=False, timeout=10)
        assert page.status_code == 200, page.text[:2000]
        decision = consent_decision(page.text, workspace=workspace)
        response = browser.post(url, data=decision, allow_redirects=False, timeout=10)
        assert response.status_code == 302, response.text[:2000]
        return response.headers["Location"]

    async def redirect_handler(url: str) -> None:
        storage.authorizations.append(url)
        redirect.update(query(await asyncio.to_thread(approve, url)))

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=redirect["code"], state=redirect.get("state"), iss=redirect.get("iss"))

    metadata = OAuthClientMetadata(
        client_name="Avtrz MCP tests",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    return OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )


def with_client(
    base: str,
    browser: requests.Session,
    work: Callable[[Client], Awaitable[T]],
    *,
    storage: MemoryStorage | None = None,
    workspace: str | None = None,
    transport: httpx2.AsyncBaseTransport | None = None,
    mode: str = "legacy",
) -> T:
    """Connect the SDK client to ``base``/mcp (authorizing when it has no token) and run ``work``."""
    storage = storage if storage is not None else MemoryStorage()
    mcp_url = f"{base}/mcp"

    async def main() -> T:
        auth = oauth_provider(mcp_url, browser, storage, workspace)
        async with httpx2.AsyncClient(auth=auth, transport=transport, timeout=30) as http:
            async with Client(streamable_http_client(mcp_url, http_client=http), mode=mode) as client:
                return await work(client)

    return asyncio.run(main())


def access_token(base: str, browser: requests.Session, *, workspace: str | None = None) -> str:
    """A valid access token for ``base``/mcp, issued through the whole OAuth flow as a client gets one."""
    storage = MemoryStorage()

    async def list_tools(client: Client):
        return await client.list_tools()

    with_client(base, browser, list_tools, storage=storage, workspace=workspace)
    return storage.tokens.access_token


def call(base: str, token: str | None, method: str = "tools/list", params: dict[str, Any] | None = None):
    """One raw JSON-RPC POST, as any stateless client sends it."""
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    return requests.post(f"{base}/mcp", json=body, headers=headers, timeout=30)
