"""The whole connector path over real HTTP: the MCP SDK's client discovers the server, registers,
gets the user's consent with PKCE, then initializes, lists the tools and calls each of them."""

from __future__ import annotations

import base64
import io
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from PIL import Image

from accounts.connections import workspace_for_access_token
from accounts.oauth import mcp_resource_url
from tests.mcp.conftest import EILEEN, MemoryStorage, with_client
from tests.services import sign_in
from workspaces.models import ApiKey


pytestmark = pytest.mark.django_db(transaction=True)

TOOLS = {"get_profile_avatar", "get_profile", "get_publishable_key"}


def test_a_client_connects_and_calls_every_tool(serve, directory, alice, acme):
    storage = MemoryStorage()
    with serve() as base:
        browser = sign_in(base, alice)

        async def session(client):
            tools = await client.list_tools()
            avatar = await client.call_tool("get_profile_avatar", {"linkedin_url": "linkedin.com/in/Eileen-Collins"})
            profile = await client.call_tool("get_profile", {"username": "eileen-collins"})
            key = await client.call_tool("get_publishable_key", {})
            return client.server_info, client.instructions, tools, avatar, profile, key

        info, instructions, tools, avatar, profile, key = with_client(base, browser, session, storage=storage)
        image_url = avatar.structured_content["imageUrl"]
        redirect = requests.get(image_url, allow_redirects=False, timeout=10)
        image = requests.get(redirect.headers["Location"], timeout=10)

    # The SDK client went through discovery, registration and one consent.
    assert len(storage.authorizations) == 1
    authorization = parse_qs(urlsplit(storage.authorizations[0]).query)
    assert authorization["resource"] == [mcp_resource_url()]
    assert authorization["code_challenge_method"] == ["S256"]
    token, workspace = workspace_for_access_token(storage.tokens.access_token)
    assert workspace == acme

    assert info.name == "avtrz" and info.version
    assert info.title == "Avtrz" and info.icons[0].src.startswith("data:image/svg+xml;base64,")
    assert "get_profile_avatar" in instructions

    by_name = {tool.name: tool for tool in tools.tools}
    assert set(by_name) == TOOLS
    for tool in by_name.values():
        assert tool.description
        assert tool.output_schema["type"] == "object"
        assert tool.annotations.read_only_hint is True
        assert tool.annotations.destructive_hint is False
        assert tool.annotations.open_world_hint is False
    for name in ("get_profile_avatar", "get_profile"):
        schema = by_name[name].input_schema
        assert schema["properties"]["linkedin_url"]["type"] == "string"
        assert schema["properties"]["username"]["type"] == "string"
        assert "exactly one" in schema["properties"]["username"]["description"]
        # Optional strings have no `"default": null` (null is not a string).
        assert "default" not in schema["properties"]["linkedin_url"]
        assert "default" not in schema["properties"]["username"]
        assert not schema.get("required")
    size = by_name["get_profile_avatar"].input_schema["properties"]["size"]
    assert size["enum"] == [32, 64, 128, 256, 512] and size["default"] == 256
    assert "imageUrl" in by_name["get_profile_avatar"].output_schema["properties"]

    # get_profile_avatar: the cropped photo inline, and a durable URL that redirects to it.
    assert not avatar.is_error
    text, picture = avatar.content
    assert picture.mime_type == "image/webp"
    inline = Image.open(io.BytesIO(base64.b64decode(picture.data)))
    assert inline.format == "WEBP" and inline.size == (256, 256)
    data = avatar.structured_content
    assert data["status"] == "resolved"
    assert data["profileUrl"] == "https://www.linkedin.com/in/eileen-collins/"
    assert image_url in text.text
    params = parse_qs(urlsplit(image_url).query)
    connector_key = params["key"][0]
    assert ApiKey.objects.for_key(connector_key).workspace == acme
    assert params["linkedin_url"] == [data["profileUrl"]] and params["size"] == ["256"]
    assert redirect.status_code == 302
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/webp"
    assert image.content == base64.b64decode(picture.data)

    # get_profile: the directory's fields, structured and as Markdown.
    assert not profile.is_error
    fields = profile.structured_content
    for name, key_name in (
        ("name", "name"),
        ("headline", "headline"),
        ("summary", "summary"),
        ("industry", "industry"),
        ("location", "location"),
    ):
        assert fields[key_name] == EILEEN[name]
    assert fields["openToWork"] is False
    assert fields["pictureUrl"].startswith(f"{base}/v1/avatar?key={connector_key}&")
    markdown = profile.content[0].text
    assert markdown.startswith("### Eileen Collins") and "Houston, Texas" in markdown

    # get_publishable_key: the same connector key, and a template for URLs like imageUrl.
    assert not key.is_error
    published = key.structured_content
    assert published["publishableKey"] == connector_key
    assert published["sizes"] == [32, 64, 128, 256, 512]
    assert published["urlTemplate"].format(linkedin_url="X", size=64) == (
        f"{base}/v1/avatar?key={connector_key}&linkedin_url=X&size=64"
    )
    assert "{username}" in published["usernameUrlTemplate"]
