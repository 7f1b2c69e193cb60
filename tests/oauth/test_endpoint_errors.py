"""Odd requests to the OAuth endpoints get OAuth errors, never a 500 or an HTML page where a
client expects JSON: unsupported grants, prompt=none, approval_prompt=auto, tampered consent
forms, malformed and oversized bodies."""

import json
from urllib.parse import urlencode, urlsplit

import pytest
from django.test import Client
from django.test.client import AsyncRequestFactory
from oauth2_provider.models import Application, Grant

from tests.oauth.oauthutil import (
    CLAUDE,
    authorize_params,
    authorize_path,
    consent_decision,
    form_fields,
    pkce,
    query,
)


pytestmark = pytest.mark.django_db

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
def anonymous() -> Client:
    return Client(raise_request_exception=False)


@pytest.fixture
def signed_in(alice, acme) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    return client


@pytest.fixture
def app(register) -> dict:
    return register()


def _authorize(app: dict, redirect_uri: str = CLAUDE, **params) -> str:
    _verifier, challenge = pkce()
    return authorize_path(authorize_params(app["client_id"], redirect_uri, challenge, **params))


def _json_error(response, status: int, error: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == error
    return response.json()


# --------------------------------------------------------------------------------------- token


@pytest.mark.parametrize("params", [{}, {"device_code": "abc"}], ids=["without-device-code", "with-device-code"])
def test_the_device_grant_is_unsupported(anonymous, app, params):
    # DOT answered a 500 (no device_code) or a 404 "device_not_found" before any check.
    response = anonymous.post("/o/token/", {"grant_type": DEVICE_GRANT, "client_id": app["client_id"], **params})
    _json_error(response, 400, "unsupported_grant_type")
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("grant_type", ["password", "client_credentials", "implicit", "made-up"])
def test_grant_types_the_metadata_does_not_list_are_unsupported(anonymous, app, grant_type):
    response = anonymous.post("/o/token/", {"grant_type": grant_type, "client_id": app["client_id"]})
    _json_error(response, 400, "unsupported_grant_type")


def test_a_json_token_request_is_told_to_use_form_parameters(anonymous, app):
    body = {"grant_type": "authorization_code", "code": "x", "client_id": app["client_id"]}
    response = anonymous.post("/o/token/", body, content_type="application/json")
    assert "x-www-form-urlencoded" in _json_error(response, 400, "invalid_request")["error_description"]


def test_an_oversized_token_request_gets_a_json_error(anonymous, app, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    response = anonymous.post("/o/token/", {"grant_type": "authorization_code", "code": "x" * 5_000})
    _json_error(response, 400, "invalid_request")
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    response = anonymous.post("/o/token/", {f"field{i}": "x" for i in range(10)})
    _json_error(response, 400, "invalid_request")


def test_errors_our_validator_raises_are_json_and_not_cached(alice, acme, connect):
    client = Client()
    client.force_login(alice)
    app, token = connect(client)
    response = Client().post(
        "/o/token/",
        {
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": app["client_id"],
            "resource": "https://elsewhere.example/mcp",
        },
    )
    _json_error(response, 400, "invalid_target")
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"grant_type=authorization_code&code=\xff\xfe&client_id=x", "application/x-www-form-urlencoded"),
        (b"grant_type=authorization_code&grant_type=refresh_token&code=x", "application/x-www-form-urlencoded"),
        (b"grant_type=authorization_code&code=a%00b&client_id=a%00b", "application/x-www-form-urlencoded"),
        (b"grant_type=refresh_token&refresh_token=" + b"r" * 100_000, "application/x-www-form-urlencoded"),
        (b"", "application/x-www-form-urlencoded"),
    ],
    ids=["non-utf8", "duplicate", "nul", "huge-value", "empty"],
)
def test_odd_token_requests_get_oauth_errors(anonymous, body, content_type):
    response = anonymous.post("/o/token/", body, content_type=content_type)
    assert response.status_code in (400, 401), response.content
    assert response["Content-Type"] == "application/json"
    assert "error" in response.json()


@pytest.mark.parametrize("path", ["/o/revoke_token/", "/o/introspect/"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": {}},
        {"data": {"token": "a\x00"}},
        {"data": {"token": "a" * 100_000, "token_type_hint": "nonsense"}},
        {"data": b"token=\xff", "content_type": "application/x-www-form-urlencoded"},
        {"data": '{"token": "abc"}', "content_type": "application/json"},
        {"data": {"token": "abc"}, "HTTP_AUTHORIZATION": "Basic %%%"},
        {"data": {"token": "abc"}, "HTTP_AUTHORIZATION": "Bearer \x00"},
    ],
    ids=["empty", "nul", "huge", "non-utf8", "json", "bad-basic", "bad-bearer"],
)
def test_odd_revocation_and_introspection_requests_never_fail(anonymous, path, kwargs):
    assert anonymous.post(path, **kwargs).status_code < 500


# ---------------------------------------------------------------------------- prompt=none


def test_prompt_none_for_a_signed_in_user_answers_consent_required(signed_in, app, settings):
    # oauthlib asked the validator for a silent login, which DOT does not implement: a 500.
    response = signed_in.get(_authorize(app, prompt="none", state="s-1"))
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(CLAUDE + "?")
    params = query(location)
    assert (params["error"], params["state"], params["iss"]) == ("consent_required", "s-1", settings.PUBLIC_BASE_URL)
    assert "code" not in params
    assert not Grant.objects.exists()


def test_prompt_none_without_a_session_answers_login_required(anonymous, app, settings):
    response = anonymous.get(_authorize(app, prompt="none", state="s-2"))
    assert response.status_code == 302
    params = query(response["Location"])
    assert (params["error"], params["state"], params["iss"]) == ("login_required", "s-2", settings.PUBLIC_BASE_URL)


def test_prompt_none_without_openid_is_silent_too(signed_in, app):
    response = signed_in.get(_authorize(app, prompt="none", scope="profile"))
    assert query(response["Location"])["error"] == "consent_required"


def test_prompt_none_with_another_value_is_an_invalid_request(signed_in, app):
    response = signed_in.get(_authorize(app, prompt="none login"))
    assert query(response["Location"])["error"] == "invalid_request"


@pytest.mark.parametrize("client_fixture", ["anonymous", "signed_in"])
def test_prompt_none_never_redirects_to_an_unregistered_uri(request, app, client_fixture):
    client = request.getfixturevalue(client_fixture)
    response = client.get(_authorize(app, redirect_uri="https://evil.example/cb", prompt="none"))
    assert response.status_code == 400
    assert "Location" not in response


# ----------------------------------------------------------------------- approval_prompt=auto


def test_approval_prompt_auto_still_shows_the_consent_screen_once_a_token_exists(alice, acme, connect):
    # DOT skipped the screen and issued a code bound to no workspace: a 500.
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    app, _token = connect(client)
    response = client.get(_authorize(app, approval_prompt="auto"))
    assert response.status_code == 200
    assert b'name="allow"' in response.content
    # The screen's own form no longer carries the parameter: approving works as usual.
    fields = form_fields(response.content.decode())
    assert "approval_prompt" not in dict(fields)


def test_an_application_set_to_skip_authorization_is_denied_rather_than_failing(signed_in, app):
    Application.objects.filter(client_id=app["client_id"]).update(skip_authorization=True)
    response = signed_in.get(_authorize(app))
    assert response.status_code == 302
    assert query(response["Location"])["error"] == "access_denied"


# --------------------------------------------------------------------------- the error page


def test_an_error_with_nowhere_to_go_is_shown_not_redirected(signed_in, app):
    # oauthlib raises a malformed claims parameter without the request: DOT redirected to "?error=..."
    # and Django refused that with a bare "Bad Request (400)".
    response = signed_in.get(_authorize(app, claims="{not json"))
    assert response.status_code == 400
    page = response.content.decode()
    assert "This connection can't be completed" in page
    assert "Malformed claims parameter" in page
    assert "Go back to the app" in page


def test_an_unknown_client_is_explained(signed_in):
    response = signed_in.get(_authorize({"client_id": "never-registered"}))
    assert response.status_code == 400
    page = response.content.decode()
    assert "not registered" in page
    assert "Go back to the app" in page


def test_a_redirect_uri_the_client_did_not_register_is_explained(signed_in, app):
    response = signed_in.get(_authorize(app, redirect_uri="https://evil.example/cb"))
    assert response.status_code == 400
    assert "https://evil.example/cb, which is not one it registered" in response.content.decode()


@pytest.mark.parametrize(
    "suffix",
    ["&client_id=other", "&redirect_uri=https%3A%2F%2Fevil.example%2F", "&state=%ff", "&client_id=%ff%fe"],
    ids=["duplicate-client", "duplicate-redirect", "non-utf8-state", "non-utf8-client"],
)
def test_odd_authorization_requests_get_the_error_page(signed_in, app, suffix):
    response = signed_in.get(_authorize(app) + suffix)
    assert response.status_code == 400
    assert "Go back to the app" in response.content.decode()


# -------------------------------------------------------------------------- tampered forms


def _consent_post(client, app, *, allow=True, **changes):
    page = client.get(_authorize(app))
    decision = consent_decision(page.content.decode(), allow=allow)
    fields = [(key, changes.get(key, value)) for key, value in decision]
    return client.post(_authorize(app), urlencode(fields), content_type="application/x-www-form-urlencoded")


def test_a_consent_form_naming_an_unknown_client_is_refused(signed_in, app):
    # DOT looked the application up with .get(): a 500.
    response = _consent_post(signed_in, app, client_id="never-registered")
    assert response.status_code == 400
    assert not Grant.objects.exists()


@pytest.mark.parametrize("allow", [True, False], ids=["authorize", "deny"])
def test_a_consent_form_naming_an_unregistered_redirect_uri_sends_nothing_there(signed_in, app, allow):
    # Deny answered https://evil.example/?error=access_denied without checking the URI.
    response = _consent_post(signed_in, app, redirect_uri="https://evil.example/cb", allow=allow)
    assert response.status_code == 400
    assert "Location" not in response
    assert not Grant.objects.exists()


def test_a_consent_form_with_a_loopback_alias_still_works(register, signed_in):
    app = register(redirect_uris=["http://localhost:6274/oauth/callback"])
    _verifier, challenge = pkce()
    url = authorize_path(authorize_params(app["client_id"], "http://127.0.0.1:7001/oauth/callback", challenge))
    page = signed_in.get(url)
    decision = signed_in.post(
        url, urlencode(consent_decision(page.content.decode())), content_type="application/x-www-form-urlencoded"
    )
    assert decision.status_code == 302
    assert urlsplit(decision["Location"]).netloc == "127.0.0.1:7001"
    assert "code" in query(decision["Location"])


# ----------------------------------------------------------------------------------- helpers


def test_a_parameter_is_dropped_from_an_asgi_request_too():
    from accounts.oauth_views import _without_parameter

    request = AsyncRequestFactory().get("/o/authorize/", {"client_id": "c", "prompt": "none", "state": "a b"})
    clone = _without_parameter(request, "prompt")
    assert "prompt" not in clone.GET and clone.GET["state"] == "a b"
    assert "prompt" not in clone.get_full_path()
    assert request.GET["prompt"] == "none"
    assert "prompt=none" in request.get_full_path()


# ---------------------------------------------------------------------------- NUL characters
# PostgreSQL refuses a NUL in any query: each of these was a 500 there (SQLite let them through).


@pytest.mark.parametrize(
    "query",
    ["client_id=a%00b&response_type=code", "client_id=x&state=%00&response_type=code", "next=%00"],
)
def test_a_nul_in_an_authorization_request_is_a_clear_400(signed_in, query):
    response = signed_in.get(f"/o/authorize/?{query}")
    _json_error(response, 400, "invalid_request")
    assert "NUL" in response.json()["error_description"]


def test_a_nul_in_a_token_request_is_a_clear_400(anonymous, app):
    response = anonymous.post("/o/token/", {"grant_type": "authorization_code", "code": "a\x00", "client_id": "x"})
    _json_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({"client_name": "Claude\u0000", "redirect_uris": [CLAUDE]}, "invalid_client_metadata"),
        ({"redirect_uris": [CLAUDE, "https://a\u0000b.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": [CLAUDE], "extra": {"nested\u0000": ["x"]}}, "invalid_client_metadata"),
    ],
)
def test_a_nul_in_a_registration_is_refused(anonymous, metadata, error):
    response = anonymous.post("/o/register/", json.dumps(metadata), content_type="application/json")
    _json_error(response, 400, error)
