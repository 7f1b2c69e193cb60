"""Removing a photo on the real server: two uvicorn workers sharing Redis, each answering warm hits
from its own memory and replaying redirects; support's admin action over HTTP must reach both at once,
along with the old image URLs and both MCP tools."""

import re

import pytest
import requests
from django.conf import settings

from avtrz.avatars import removal
from avtrz.avatars.directory import import_profile
from avtrz.avatars.models import AvatarImage
from tests import services
from tests.avatars.conftest import IMAGES
from tests.fixture_server import FixtureServer
from tests.mcp import conftest as mcp
from tests.mcp.conftest import EILEEN, access_token, call
from workspaces import services as workspace_services


pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]
# The MCP tests' live server: uvicorn on the test database, in this process's cache namespace.
serve = mcp.serve


def tool(base: str, token: str, name: str, **arguments) -> dict:
    response = call(base, token, "tools/call", {"name": name, "arguments": arguments})
    assert response.status_code == 200, response.text
    text = response.text
    if text.startswith("event:") or text.startswith("data:"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    return requests.models.complexjson.loads(text)["result"]


def test_a_removal_reaches_both_workers_the_image_urls_and_both_tools_at_once(serve, acme, alice, staff):
    import_profile(dict(EILEEN), base_dir=IMAGES)
    names, _ = removal.stored_names(AvatarImage.objects.all())
    media = settings.MEDIA_ROOT
    raw = workspace_services.create_api_key(actor=alice, workspace=acme, kind="publishable", name="Web")
    with (
        FixtureServer() as linkedin,
        serve(
            workers=2,
            REDIS_URL=services.redis_url(),
            LINKEDIN_BASE_URL=linkedin.url("").rstrip("/"),
            LINKEDIN_HOST="127.0.0.1",
            AVTRZ_PHOTO_HOSTS="127.0.0.1",
            AVTRZ_FETCH_ALLOW_PRIVATE="127.0.0.1",
        ) as base,
    ):

        def avatars(n: int, **who) -> list[requests.Response]:
            query = {"key": raw, "size": "256", **(who or {"username": "eileen-collins"})}
            return [
                requests.get(f"{base}/v1/avatar", params=query, allow_redirects=False, timeout=10) for _ in range(n)
            ]

        token = access_token(base, services.sign_in(base, alice))
        before_tool = tool(base, token, "get_profile_avatar", username="eileen-collins")
        warm = avatars(40)
        old_image = warm[0].headers["Location"]
        assert requests.get(old_image, timeout=10).status_code == 200

        support = services.sign_in(base, staff)
        page = support.get(f"{base}/admin/avatars/profile/", timeout=10)
        pk = re.search(r'name="_selected_action" value="(\d+)"', page.text).group(1)
        form = {"csrfmiddlewaretoken": support.cookies["csrftoken"], "action": "remove_and_opt_out"}
        removed = support.post(
            f"{base}/admin/avatars/profile/",
            data={**form, "_selected_action": pk, "reason": "Asked by the person, by email."},
            timeout=30,
        )

        after = avatars(40) + avatars(5, linkedin_url="https://www.linkedin.com/in/Eileen-Collins/")
        gone = requests.get(old_image, timeout=10)
        after_avatar_tool = tool(base, token, "get_profile_avatar", linkedin_url="linkedin.com/in/eileen-collins")
        after_profile_tool = tool(base, token, "get_profile", username="eileen-collins")

    assert [response.status_code for response in warm] == [302] * 40
    assert any(response.headers.get("X-Cache") == "HIT" for response in warm)
    assert before_tool["structuredContent"]["status"] == "resolved"
    assert "Removed 1 profile" in removed.text
    assert [(r.status_code, r.headers["Content-Type"]) for r in after] == [(200, "image/svg+xml")] * 45
    assert gone.status_code == 410
    assert not any((media / name).exists() for name in names)
    for result in (after_avatar_tool, after_profile_tool):
        assert result["structuredContent"]["status"] == "opted_out"
        assert result["content"] == [{"type": "text", "text": "This person has asked not to be shown."}]
    assert linkedin.requests == []  # the handle in a new URL form was not looked up anywhere
