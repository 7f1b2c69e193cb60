"""What ``accounts.dot`` relies on in django-oauth-toolkit, checked against the installed DOT.

One test per use of a DOT private API. Each drives DOT's real code through the adapter, and a
failure names the adapter function whose assumption an upgrade broke: re-read that function's DOT
source, adapt the function (not its callers), and move ``accounts.dot.DOT_VERSION`` on.
"""

from __future__ import annotations

import ast
import base64
import json
import pathlib
from importlib.metadata import version
from urllib.parse import parse_qs, quote_plus, urlencode, urlsplit

import oauth2_provider
import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from oauth2_provider.cimd import CIMDError
from oauth2_provider.models import AccessToken, Application, Grant, RefreshToken
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views import DynamicClientRegistrationView
from oauthlib.common import Request
from oauthlib.oauth2.rfc6749.errors import CustomOAuth2Error

from accounts import dot


pytestmark = pytest.mark.django_db

REDIRECT_URI = "https://client.example/callback"
RESOURCE = "https://avtrz.example/mcp"


def broke(function: str, what: str) -> str:
    """The failure message: which adapter function's assumption DOT no longer meets."""
    return (
        f"django-oauth-toolkit {version('django-oauth-toolkit')} broke accounts.dot.{function} "
        f"(read from {dot.DOT_VERSION}): {what}"
    )


def test_the_adapter_was_read_from_the_installed_dot():
    installed = version("django-oauth-toolkit")
    assert installed == dot.DOT_VERSION, (
        f"accounts.dot was read from django-oauth-toolkit {dot.DOT_VERSION}, {installed} is installed: re-read the "
        "DOT source of every function in accounts/dot.py, run this file, then set DOT_VERSION"
    )


# ---------------------------------------------------------------- one door


def _dot_private_names() -> tuple[set[str], set[str]]:
    """DOT's private methods, and its other private module-level names."""
    methods, names = set(), set()
    for path in pathlib.Path(oauth2_provider.__file__).parent.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                methods |= {
                    item.name
                    for item in node.body
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and _private(item.name)
                }
            elif isinstance(node, ast.FunctionDef | ast.ClassDef) and _private(node.name):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names |= {target.id for target in node.targets if isinstance(target, ast.Name) and _private(target.id)}
    return methods, names


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_but_the_adapter_names_a_dot_private_api():
    methods, names = _dot_private_names()
    root = pathlib.Path(settings.BASE_DIR)
    offences = []
    for app in ("accounts", "avtrz", "workspaces", "mcpserver"):
        for path in sorted((root / app).rglob("*.py")):
            if "migrations" in path.parts or path == root / "accounts" / "dot.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                where = f"{path.relative_to(root)}:{getattr(node, 'lineno', '?')}"
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("oauth2_provider"):
                    offences += [f"{where} imports {alias.name}" for alias in node.names if _private(alias.name)]
                elif isinstance(node, ast.Attribute) and node.attr in methods | names:
                    offences.append(f"{where} uses {node.attr}")
                elif isinstance(node, ast.ClassDef):
                    offences += [
                        f"{where} overrides {item.name}"
                        for item in node.body
                        if isinstance(item, ast.FunctionDef) and item.name in methods
                    ]
    assert not offences, "DOT private APIs outside accounts/dot.py (route them through it): " + "; ".join(offences)


def test_the_configured_validator_extends_dot_through_the_adapter_hooks():
    assert issubclass(oauth2_settings.OAUTH2_VALIDATOR_CLASS, dot.OAuth2ValidatorHooks)


# ---------------------------------------------------------------- authorization endpoint


def test_add_iss_to_redirect_sets_one_iss_in_the_query():
    denied = dot.add_iss_to_redirect(f"{REDIRECT_URI}?error=access_denied&state=xyz", "https://avtrz.example")
    assert parse_qs(urlsplit(denied).query) == {
        "error": ["access_denied"],
        "state": ["xyz"],
        "iss": ["https://avtrz.example"],
    }, broke("add_iss_to_redirect", f"the error redirect became {denied}")
    # A registered redirect URI may carry its own iss: the server's must be the only one.
    replaced = dot.add_iss_to_redirect(f"{REDIRECT_URI}?iss=https://evil.example&error=x", "https://avtrz.example")
    assert parse_qs(urlsplit(replaced).query)["iss"] == ["https://avtrz.example"], broke(
        "add_iss_to_redirect", f"an iss already in the redirect URI survived: {replaced}"
    )


# ---------------------------------------------------------------- dynamic client registration


def test_parse_registration_metadata_returns_the_object_or_dot_s_refusal():
    metadata, error = dot.parse_registration_metadata(b'{"client_name": "Inspector"}')
    assert (metadata, error) == ({"client_name": "Inspector"}, None), broke(
        "parse_registration_metadata", "a JSON object is not returned as (metadata, None)"
    )
    for body in (b"[]", b"{", b"\xff"):
        metadata, error = dot.parse_registration_metadata(body)
        assert metadata is None and error.status_code == 400, broke(
            "parse_registration_metadata", f"{body!r} is not refused with a 400 response"
        )
        assert json.loads(error.content)["error"] == "invalid_client_metadata", broke(
            "parse_registration_metadata", f"{body!r} is refused with {error.content!r}"
        )
    # accounts.oauth_views._read_metadata answers this one in JSON itself.
    with pytest.raises(RecursionError):
        dot.parse_registration_metadata(b"[" * 100_000)


def test_replace_registration_body_is_what_dot_registers():
    request = RequestFactory().post("/o/register/", {"redirect_uris": [REDIRECT_URI]}, content_type="application/json")
    request.user = AnonymousUser()
    dot.replace_registration_body(
        request, {"redirect_uris": [REDIRECT_URI], "client_name": "Replaced", "token_endpoint_auth_method": "none"}
    )
    response = DynamicClientRegistrationView.as_view()(request)
    assert response.status_code == 201, response.content
    registered = Application.objects.get(client_id=json.loads(response.content)["client_id"])
    assert registered.name == "Replaced", broke(
        "replace_registration_body", "DOT's registration view no longer reads the metadata from request.body"
    )


# ---------------------------------------------------------------- client metadata documents


@pytest.mark.parametrize(
    "client_id",
    [
        "http://app.example/client.json",
        "https://app.example",
        "https://app.example/client.json#fragment",
        "https://user@app.example/client.json",
        "https://app.example/a/../client.json",
        "https://app.example:99999/client.json",
    ],
)
def test_validate_cimd_client_id_refuses_what_the_draft_forbids(client_id):
    with pytest.raises(CIMDError):
        dot.validate_cimd_client_id(client_id)


def test_validate_cimd_client_id_accepts_an_https_document_url():
    try:
        dot.validate_cimd_client_id("https://app.example:8443/oauth/client.json?v=2")
    except CIMDError as exc:
        pytest.fail(broke("validate_cimd_client_id", f"a valid client_id URL is refused: {exc}"))


def test_cimd_max_age_follows_cache_control_within_dot_s_bounds():
    floor = oauth2_settings.CIMD_METADATA_MIN_AGE_SECONDS
    ceiling = oauth2_settings.CIMD_METADATA_MAX_AGE_SECONDS
    within = (floor + ceiling) // 2
    expected = {
        f"public, max-age={within}": within,
        "max-age=0": floor,
        f"max-age={ceiling * 10}": ceiling,
        "no-store": floor,
        "no-cache, max-age=600": floor,
        None: ceiling,
    }
    found = {header: dot.cimd_max_age(header) for header in expected}
    assert found == expected, broke("cimd_max_age", f"Cache-Control maps to {found}")


def test_check_cimd_grant_types_allows_the_code_grant_only():
    for allowed in (["authorization_code"], ["authorization_code", "refresh_token"]):
        try:
            dot.check_cimd_grant_types(allowed)
        except CIMDError as exc:
            pytest.fail(broke("check_cimd_grant_types", f"{allowed} is refused: {exc}"))
    for refused in ([], ["refresh_token"], ["authorization_code", "implicit"], ["client_credentials"]):
        with pytest.raises(CIMDError):
            dot.check_cimd_grant_types(refused)


def test_check_cimd_application_refuses_what_dot_will_not_register():
    document = {"client_id": "https://app.example/client.json", "client_name": "App", "redirect_uris": [REDIRECT_URI]}
    try:
        dot.check_cimd_application(document)
    except CIMDError as exc:
        pytest.fail(broke("check_cimd_application", f"a valid public client's document is refused: {exc}"))
    for change in (
        {"client_secret": "s"},
        {"token_endpoint_auth_method": "client_secret_basic"},
        {"redirect_uris": []},
        {"client_name": 3},
        {"grant_types": "authorization_code"},
    ):
        with pytest.raises(CIMDError):
            dot.check_cimd_application({**document, **change})


# ---------------------------------------------------------------- client authentication

# Characters that Basic credentials must form-encode (RFC 6749 §2.3.1).
SECRET = "s3cret: with+plus%and space"


@pytest.fixture
def confidential(alice) -> Application:
    return Application.objects.create(
        client_id="confidential-client",
        client_secret=SECRET,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECT_URI,
        user=alice,
    )


def _token_request(*, basic: tuple[str, str] | None = None, **body) -> Request:
    headers = {}
    if basic is not None:
        pair = f"{quote_plus(basic[0])}:{quote_plus(basic[1])}"
        headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(pair.encode()).decode()
    return Request(
        "https://avtrz.example/o/token/",
        http_method="POST",
        body=urlencode({"grant_type": "refresh_token", **body}),
        headers=headers,
    )


def test_basic_auth_credentials_decode_as_dot_authenticates(confidential):
    validator = dot.OAuth2ValidatorHooks()
    request = _token_request(basic=("confidential-client", SECRET))
    assert dot.authenticate_client_basic(validator, request), broke(
        "authenticate_client_basic", "DOT refuses a right form-encoded Basic secret"
    )
    assert request.client == confidential, broke("authenticate_client_basic", "request.client is not the client")
    decoded = dot.basic_auth_credentials(validator, request)
    assert decoded == ("confidential-client", SECRET), broke(
        "basic_auth_credentials", f"the Basic header DOT accepted decodes to {decoded}"
    )
    wrong = _token_request(basic=("confidential-client", "wrong"))
    assert not dot.authenticate_client_basic(validator, wrong), broke(
        "authenticate_client_basic", "DOT accepts a wrong secret"
    )
    assert dot.basic_auth_credentials(validator, _token_request()) is None, broke(
        "basic_auth_credentials", "a request without a Basic header has credentials"
    )


def test_authenticate_client_body_checks_the_body_parameters(confidential):
    validator = dot.OAuth2ValidatorHooks()
    request = _token_request(client_id="confidential-client", client_secret=SECRET)
    assert dot.authenticate_client_body(validator, request), broke(
        "authenticate_client_body", "DOT refuses a right client_secret in the body"
    )
    assert request.client == confidential, broke("authenticate_client_body", "request.client is not the client")
    wrong = _token_request(client_id="confidential-client", client_secret="wrong")
    assert not dot.authenticate_client_body(validator, wrong), broke(
        "authenticate_client_body", "DOT accepts a wrong secret"
    )


# ---------------------------------------------------------------- the validator's hooks


class RecordingValidator(dot.OAuth2ValidatorHooks):
    """DOT's validator, noting which hook DOT called with what."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple]] = []

    def check_and_set_resource(self, *args):
        self.calls.append(("check_and_set_resource", args))
        return super().check_and_set_resource(*args)

    def store_bearer_token(self, *args, **kwargs):
        self.calls.append(("store_bearer_token", args))
        return super().store_bearer_token(*args, **kwargs)

    def create_access_token(self, *args):
        self.calls.append(("create_access_token", args))
        return super().create_access_token(*args)

    def create_refresh_token(self, *args):
        self.calls.append(("create_refresh_token", args))
        return super().create_refresh_token(*args)

    def called(self) -> list[str]:
        return [name for name, _args in self.calls]


@pytest.fixture
def public() -> Application:
    return Application.objects.create(
        client_id="public-client",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECT_URI,
    )


def _authorized(public: Application, user) -> Request:
    request = Request(f"https://avtrz.example/o/authorize/?client_id={public.client_id}")
    request.client, request.user, request.redirect_uri = public, user, REDIRECT_URI
    request.scopes, request.claims, request.nonce = ["openid", "offline_access"], None, None
    request.code_challenge, request.code_challenge_method = "x" * 43, "S256"
    request.resource = [RESOURCE]
    return request


def _exchange(public: Application, user, **body) -> Request:
    request = Request("https://avtrz.example/o/token/", http_method="POST", body=urlencode(body))
    request.client, request.user = public, user
    return request


def _pair(suffix: str) -> dict:
    return {"access_token": f"access-{suffix}", "refresh_token": f"refresh-{suffix}", "scope": "openid offline_access"}


def test_save_authorization_code_stores_the_grant_under_its_code_with_the_resource(public, alice):
    # Public DOT API, but AvtrzOAuth2Validator.save_authorization_code finds the grant this way.
    validator = RecordingValidator()
    validator.save_authorization_code(public.client_id, {"code": "the-code"}, _authorized(public, alice))
    grant = Grant.objects.filter(code="the-code", application=public).first()
    assert grant is not None and (grant.user, grant.resource) == (alice, [RESOURCE]), (
        f"django-oauth-toolkit {version('django-oauth-toolkit')} no longer saves the grant under its code with "
        "request.resource as its audience: AvtrzOAuth2Validator.save_authorization_code relies on both"
    )
    assert validator.called() == [], broke("OAuth2ValidatorHooks", f"saving a code called {validator.called()}")


def test_store_bearer_token_saves_the_pair_through_the_other_hooks(public, alice):
    RecordingValidator().save_authorization_code(public.client_id, {"code": "the-code"}, _authorized(public, alice))
    validator = RecordingValidator()
    request = _exchange(public, alice, grant_type="authorization_code", code="the-code")
    validator.save_bearer_token(_pair("one"), request)
    assert validator.called() == [
        "store_bearer_token",
        "check_and_set_resource",
        "create_access_token",
        "create_refresh_token",
    ], broke("OAuth2ValidatorHooks", f"save_bearer_token called {validator.called()}")
    access = AccessToken.objects.get(application=public)
    assert RefreshToken.objects.get(application=public).access_token == access, broke(
        "OAuth2ValidatorHooks.create_refresh_token", "the refresh token is not bound to the access token"
    )
    assert request.resource == [RESOURCE] and access.resource == [RESOURCE], broke(
        "OAuth2ValidatorHooks.check_and_set_resource", "the token does not inherit the grant's resource"
    )


def test_check_and_set_resource_refuses_a_resource_beyond_the_grant(public, alice):
    RecordingValidator().save_authorization_code(public.client_id, {"code": "the-code"}, _authorized(public, alice))
    # accounts.oauth_validators sets the canonical list; DOT must take a list as it is, and narrow.
    ours = _exchange(public, alice, grant_type="authorization_code", code="the-code")
    ours.resource = [RESOURCE]
    RecordingValidator().check_and_set_resource(ours)
    assert ours.resource == [RESOURCE], broke("OAuth2ValidatorHooks.check_and_set_resource", "a list was rewritten")
    other = _exchange(public, alice, grant_type="authorization_code", code="the-code")
    other.resource = ["https://other.example/api"]
    with pytest.raises(CustomOAuth2Error) as refused:
        RecordingValidator().check_and_set_resource(other)
    assert refused.value.error == "invalid_target", broke(
        "OAuth2ValidatorHooks.check_and_set_resource", f"a wider resource is refused with {refused.value.error}"
    )


def test_a_rotation_keeps_the_family_and_records_the_successor(public, alice):
    RecordingValidator().save_authorization_code(public.client_id, {"code": "the-code"}, _authorized(public, alice))
    RecordingValidator().save_bearer_token(
        _pair("one"), _exchange(public, alice, grant_type="authorization_code", code="the-code")
    )
    first = RefreshToken.objects.get(application=public)
    validator = RecordingValidator()
    rotation = _exchange(public, alice, grant_type="refresh_token")
    rotation.refresh_token_instance = first
    validator.save_bearer_token(_pair("two"), rotation)
    first.refresh_from_db()
    successor = RefreshToken.objects.exclude(pk=first.pk).get(application=public)
    # accounts.oauth_validators answers a retried rotation with a pair in the same family, and
    # tells a rotated token from a revoked one by the access token naming it as its source.
    assert successor.token_family == first.token_family, broke(
        "OAuth2ValidatorHooks.create_refresh_token", "a rotated refresh token left its family"
    )
    assert first.revoked is not None, broke("OAuth2ValidatorHooks.store_bearer_token", "rotation kept the old token")
    assert AccessToken.objects.filter(source_refresh_token=first).get() == successor.access_token, broke(
        "OAuth2ValidatorHooks.create_access_token", "the new access token does not name the rotated one as source"
    )
    created = dict(validator.calls)
    assert created["create_refresh_token"][3] == first, broke(
        "OAuth2ValidatorHooks.create_refresh_token", "DOT no longer passes the rotated token as previous_refresh_token"
    )


def test_presented_refresh_token_is_the_row_dot_validated_even_within_the_grace(public, alice, settings):
    RecordingValidator().save_authorization_code(public.client_id, {"code": "the-code"}, _authorized(public, alice))
    validator = RecordingValidator()
    validator.save_bearer_token(
        _pair("one"), _exchange(public, alice, grant_type="authorization_code", code="the-code")
    )
    first = RefreshToken.objects.get(application=public)
    refresh = _exchange(public, alice, grant_type="refresh_token")
    assert validator.validate_refresh_token("refresh-one", public, refresh), broke(
        "presented_refresh_token", "DOT refuses a live refresh token"
    )
    assert dot.presented_refresh_token(refresh) == first, broke(
        "presented_refresh_token", "validate_refresh_token does not keep the presented row"
    )
    validator.save_bearer_token(_pair("two"), refresh)
    # A client retrying the lost answer to that rotation presents the rotated token again.
    assert settings.OAUTH2_PROVIDER["REFRESH_TOKEN_GRACE_PERIOD_SECONDS"] > 0
    retry = _exchange(public, alice, grant_type="refresh_token")
    assert validator.validate_refresh_token("refresh-one", public, retry), broke(
        "presented_refresh_token", "a token rotated within the grace period is refused"
    )
    presented = dot.presented_refresh_token(retry)
    assert presented == first and presented.revoked is not None, broke(
        "presented_refresh_token", f"within the grace period the presented row is {presented}"
    )
