"""The tools against the live server: metering on the bound workspace, refusals the model can
read, the enriching state, and a stateless client served by two processes in turn."""

from __future__ import annotations

import base64
import io
import itertools

import httpx2
import pytest
import requests
from PIL import Image

from avtrz.avatars.monogram import monogram_colour
from tests.factories import MembershipFactory, WorkspaceFactory
from tests.mcp.conftest import MemoryStorage, with_client
from tests.services import sign_in
from workspaces import services as workspace_services
from workspaces.models import Membership, Plan


pytestmark = pytest.mark.django_db(transaction=True)

EILEEN = {"username": "eileen-collins"}  # on a test's own servers (`directory`); on the shared one, `profile`


def calls(*requests_: tuple[str, dict]):
    async def work(client):
        return [await client.call_tool(name, arguments) for name, arguments in requests_]

    return work


# Every way a model can get the arguments wrong, and the one sentence it reads back: the same words
# as /v1/avatar's 400s where the API has them, never the validator's dump.
ARGUMENT_ERRORS = [
    ("get_profile_avatar", {}, "Give a linkedin_url or a username."),
    ("get_profile", {}, "Give a linkedin_url or a username."),
    (
        "get_profile_avatar",
        {"username": "eileen-collins", "linkedin_url": "linkedin.com/in/x-y-z"},
        "Give either linkedin_url or username, not both.",
    ),
    ("get_profile_avatar", {"username": "eileen-collins", "size": 100}, "size must be one of 32, 64, 128, 256, 512."),
    ("get_profile_avatar", {"username": "eileen-collins", "size": "big"}, "size must be one of 32, 64, 128, 256, 512."),
    ("get_profile_avatar", {"username": "eileen-collins", "size": None}, "size must be one of 32, 64, 128, 256, 512."),
    ("get_profile_avatar", {"username": 5}, "username must be a string, e.g. janedoe."),
    ("get_profile", {"username": ["eileen-collins"]}, "username must be a string, e.g. janedoe."),
    (
        "get_profile",
        {"linkedin_url": {"url": "x"}},
        "linkedin_url must be a string, e.g. https://www.linkedin.com/in/janedoe.",
    ),
    (
        "get_profile_avatar",
        {"username": "eileen-collins", "width": 64},
        "get_profile_avatar has no argument width; it takes linkedin_url, username and size.",
    ),
    (
        "get_profile",
        {"username": "eileen-collins", "size": 64},
        "get_profile has no argument size; it takes linkedin_url and username.",
    ),
    ("get_publishable_key", {"workspace": "acme"}, "get_publishable_key takes no arguments; remove workspace."),
    (
        "get_profile",
        {"linkedin_url": "https://www.linkedin.com/company/nasa"},
        "linkedin_url is a company page, not a person's profile (expected linkedin.com/in/<handle>).",
    ),
    ("get_profile", {"linkedin_url": "https://evil.example/in/eileen"}, "linkedin_url must be on linkedin.com"),
    ("get_profile", {"linkedin_url": "not a url at all"}, "linkedin_url"),
    ("get_profile_avatar", {"username": "a"}, "username must name a handle of"),
]


def with_handle(value, handle: str):
    """`value` with Eileen's handle in the arguments above replaced by the test's profile's."""
    if isinstance(value, dict):
        return {name: with_handle(item, handle) for name, item in value.items()}
    if isinstance(value, list):
        return [with_handle(item, handle) for item in value]
    return handle if value == "eileen-collins" else value


def test_every_argument_error_is_one_plain_sentence(live, profile, alice, acme):
    requests_ = [(name, with_handle(arguments, profile.handle)) for name, arguments, _ in ARGUMENT_ERRORS]
    results = with_client(live, sign_in(live, alice), calls(*requests_))
    for (name, arguments, expected), result in zip(ARGUMENT_ERRORS, results, strict=True):
        text = result.content[0].text
        assert result.is_error, (name, arguments)
        assert len(result.content) == 1, (name, arguments)
        assert text.startswith(expected), (name, arguments, text)
        assert ". " not in text.replace("e.g. ", "") and text.endswith("."), (name, arguments, text)  # one sentence
        for leak in ("validation error", "pydantic", "Error executing tool", "type=", "Traceback", "Input should"):
            assert leak not in text, (name, arguments, text)


def test_quota_exhausted_is_an_error_and_the_connection_stays_valid(live, profile, alice, acme):
    # Limits are copied into the usage period when it is created, at the first metered call.
    Plan.objects.filter(code=acme.plan.code).update(monthly_requests=2, requests_per_second=1000)
    acme.refresh_from_db()
    eileen = {"username": profile.handle}
    results = with_client(
        live,
        sign_in(live, alice),
        calls(
            ("get_profile_avatar", eileen),
            ("get_profile", eileen),
            ("get_profile_avatar", eileen),
            ("get_publishable_key", {}),
        ),
    )
    first, second, refused, key = results
    assert not first.is_error and not second.is_error
    assert refused.is_error
    text = refused.content[0].text
    assert "quota exceeded for this workspace" in text
    assert acme.plan.name in text and "resets on" in text
    assert "Traceback" not in text
    assert not key.is_error  # same connection, still authorized


def test_rate_limited_says_when_to_retry(live, profile, alice, acme):
    Plan.objects.filter(code=acme.plan.code).update(requests_per_second=1, burst=1)
    results = with_client(live, sign_in(live, alice), calls(*[("get_profile", {"username": profile.handle})] * 3))
    refused = [result for result in results if result.is_error]
    assert refused, "three calls within a second on a 1/s plan"
    assert "Retry in" in refused[0].content[0].text


def test_usage_lands_on_the_bound_workspace_only(live, profile, alice, acme):
    globex = WorkspaceFactory(name="Globex", slug="globex")
    MembershipFactory(user=alice, workspace=globex, role=Membership.Role.MEMBER)
    secret = {
        workspace.slug: workspace_services.create_api_key(actor=alice, workspace=workspace, kind="secret", name="S")
        for workspace in (acme, globex)
    }
    eileen = {"username": profile.handle}
    results = with_client(
        live,
        sign_in(live, alice),
        calls(("get_profile_avatar", eileen), ("get_profile", eileen), ("get_profile_avatar", eileen)),
        workspace="globex",
    )
    usage = {
        slug: requests.get(f"{live}/v1/usage", headers={"x-api-key": key}, timeout=10).json()["meters"]
        for slug, key in secret.items()
    }
    assert not any(result.is_error for result in results)
    assert usage["globex"]["avatar_requests"]["used"] == 3
    assert usage["globex"]["avatar_new_profiles"]["used"] == 1
    assert usage["acme"]["avatar_requests"]["used"] == 0
    assert usage["acme"]["avatar_new_profiles"]["used"] == 0


def test_an_unknown_profile_shows_initials_and_where_the_photo_will_be(serve, alice, acme):
    # The enrichment task is queued, never run: the profile stays "enriching".
    with serve(CELERY_TASK_ALWAYS_EAGER="false", CELERY_BROKER_URL="memory://", AVTRZ_ENRICH_WAIT_S="0") as base:
        (avatar,) = with_client(
            base, sign_in(base, alice), calls(("get_profile_avatar", {"username": "grace-hopper", "size": 64}))
        )
    assert not avatar.is_error
    data = avatar.structured_content
    assert data["status"] == "enriching"
    assert data["mimeType"] == "image/png"
    assert "username" not in data["imageUrl"] and "grace-hopper" in data["imageUrl"]
    text, picture = avatar.content
    assert data["imageUrl"] in text.text and "initials" in text.text
    image = Image.open(io.BytesIO(base64.b64decode(picture.data))).convert("RGB")
    assert image.size == (64, 64)
    corner = "#{:02X}{:02X}{:02X}".format(*image.getpixel((0, 0)))
    assert corner == monogram_colour("grace-hopper")


class Alternating(httpx2.AsyncBaseTransport):
    """Sends each request to the next of several servers, as a load balancer without affinity would."""

    def __init__(self, ports: list[int]) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.ports = itertools.cycle(ports)
        self.served: list[int] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = next(self.ports)
        self.served.append(port)
        request.url = request.url.copy_with(port=port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_two_server_processes_serve_one_client_in_turn(serve, directory, alice, acme, mode):
    from tests import services

    first, second = services.free_port(), services.free_port()
    public = f"http://127.0.0.1:{first}"
    with serve(port=first) as base, serve(port=second, public_base_url=public):
        browser = sign_in(base, alice)
        storage = MemoryStorage()
        with_client(base, browser, lambda client: client.list_tools(), storage=storage)
        transport = Alternating([first, second])

        async def work(client):
            tools = await client.list_tools()
            results = [await client.call_tool("get_profile_avatar", EILEEN) for _ in range(4)]
            return tools, results

        tools, results = with_client(base, browser, work, storage=storage, transport=transport, mode=mode)
    assert len(tools.tools) == 3
    assert all(not result.is_error for result in results), [r.content[0].text for r in results if r.is_error]
    assert set(transport.served) == {first, second}
