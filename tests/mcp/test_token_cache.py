"""The MCP endpoint's cached token check, in this process against real Redis: a warm call touches no
database, and every way a token stops working refuses the very next call, with no stale cache."""

from __future__ import annotations

import asyncio
import time
import uuid
from urllib.parse import urlencode

import httpx
import pytest
from django.test import Client

from accounts.connections import token_grant, workspace_for_access_token
from accounts.models import Connection
from avtrz.lib import hotcache
from mcpserver import lookups
from mcpserver.auth import BearerAuth, bound_connection
from tests import services
from tests.mcp.conftest import EILEEN
from tests.oauth.conftest import connect, register  # noqa: F401  (fixtures)
from tests.oauth.oauthutil import CLAUDE, authorize_params, authorize_path, consent_decision, pkce, query
from workspaces.models import Membership
from workspaces.services import remove_member


pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis_cache(settings):
    """The cache as production runs it: Redis, this process's level 1 kept by the invalidation channel."""
    url = services.redis_url()
    settings.REDIS_URL = url
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": f"test-{uuid.uuid4().hex[:12]}",
        }
    }
    hotcache.get("listen")  # starts this process's invalidation listener
    deadline = time.monotonic() + 10
    while hotcache.generation() is None:
        assert time.monotonic() < deadline, "the cache invalidation channel never came up"
        time.sleep(0.01)


class Door:
    """The endpoint's bearer authentication in front of an app that names the bound workspace, on a
    clock the test moves."""

    def __init__(self) -> None:
        self.now = time.time()

        async def named(scope, receive, send):
            body = bound_connection(scope).workspace.slug.encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})

        self.app = BearerAuth(named, clock=lambda: self.now)

    def call(self, token: str) -> httpx.Response:
        async def post() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                return await client.post("/mcp", headers={"Authorization": f"Bearer {token}"})

        return asyncio.run(post())


def refused(response: httpx.Response) -> bool:
    return response.status_code == 401 and response.json()["error_description"] == "Not authenticated"


def test_a_warm_call_touches_no_database(redis_cache, alice_client, connect, acme, django_assert_num_queries):  # noqa: F811
    from avtrz.avatars.directory import import_profile
    from tests.avatars.conftest import IMAGES

    import_profile(dict(EILEEN), base_dir=IMAGES)
    _app, token = connect(alice_client)
    door = Door()
    assert door.call(token["access_token"]).text == "acme"  # checked in the database once, then cached
    workspace = token_grant(token["access_token"]).workspace
    lookups.profile_avatar(workspace, None, "eileen-collins", 256)  # the key, the card and the meter warm up

    with django_assert_num_queries(0):
        grant = token_grant(token["access_token"])
        assert lookups.avatar_answerable_from_cache(grant.workspace, None, "eileen-collins", 256)
        from_caches = lookups.profile_avatar(grant.workspace, None, "eileen-collins", 256)
        from_memory = lookups.cached_profile_avatar(grant.workspace, None, "eileen-collins", 256)  # the event loop's
    for result in (from_caches, from_memory):
        assert result.structured["status"] == "resolved"
        assert result.content[1].mime_type == "image/webp"


def test_an_expired_token_is_refused_by_the_clock(redis_cache, alice_client, connect):  # noqa: F811
    _app, token = connect(alice_client)
    door = Door()
    assert door.call(token["access_token"]).status_code == 200
    expires_at = token_grant(token["access_token"]).expires_at
    door.now = expires_at - 1
    assert door.call(token["access_token"]).status_code == 200
    door.now = expires_at
    assert refused(door.call(token["access_token"]))


def _revoke_at_dot_endpoint(ctx) -> None:
    response = Client().post(
        "/o/revoke_token/", {"token": ctx.token["access_token"], "client_id": ctx.app["client_id"]}
    )
    assert response.status_code == 200, response.content


def _revoke_in_dashboard(ctx) -> None:
    connection = Connection.objects.get()
    response = ctx.alice_client.post(f"/w/acme/connections/{connection.uid}/revoke/")
    assert response.status_code == 302


def _remove_the_member(ctx) -> None:
    remove_member(actor=ctx.alice, membership=Membership.objects.get(user=ctx.bob, workspace=ctx.acme))


def _rotate_the_refresh_token(ctx) -> None:
    response = Client().post(
        "/o/token/",
        {"grant_type": "refresh_token", "refresh_token": ctx.token["refresh_token"], "client_id": ctx.app["client_id"]},
    )
    assert response.status_code == 200, response.content


def _replay_the_code(ctx) -> None:
    replay = Client().post("/o/token/", ctx.redeem)
    assert replay.json()["error"] == "invalid_grant"


def _delete_the_workspace(ctx) -> None:
    ctx.acme.delete()


def _deactivate_the_user(ctx) -> None:
    ctx.bob.is_active = False
    ctx.bob.save()


class Context:
    def __init__(self, **values) -> None:
        self.__dict__.update(values)


@pytest.mark.parametrize(
    "revoke",
    [
        _revoke_at_dot_endpoint,
        _revoke_in_dashboard,
        _remove_the_member,
        _rotate_the_refresh_token,
        _replay_the_code,
        _delete_the_workspace,
        _deactivate_the_user,
    ],
    ids=lambda revoke: revoke.__name__.strip("_").replace("_", " "),
)
def test_a_revoked_token_is_refused_on_the_very_next_call(
    redis_cache,
    register,  # noqa: F811
    client,
    alice,
    acme,
    bob,
    revoke,
):
    """Bob connects to Acme (the code redeemed by hand, to replay it); the door caches his token; the
    revocation drops it."""
    client.force_login(bob)
    app = register(redirect_uris=[CLAUDE])
    verifier, challenge = pkce()
    authorize = authorize_path(authorize_params(app["client_id"], CLAUDE, challenge))
    page = client.get(authorize)
    answer = client.post(
        authorize,
        urlencode(consent_decision(page.content.decode())),
        content_type="application/x-www-form-urlencoded",
    )
    redeem = {
        "grant_type": "authorization_code",
        "code": query(answer["Location"])["code"],
        "redirect_uri": CLAUDE,
        "client_id": app["client_id"],
        "code_verifier": verifier,
    }
    token = Client().post("/o/token/", redeem).json()
    door = Door()
    assert door.call(token["access_token"]).text == "acme"
    assert door.call(token["access_token"]).text == "acme"  # now from the cache

    alice_client = Client()
    alice_client.force_login(alice)
    revoke(Context(app=app, token=token, redeem=redeem, alice=alice, alice_client=alice_client, acme=acme, bob=bob))

    assert refused(door.call(token["access_token"]))
    assert workspace_for_access_token(token["access_token"]) is None
