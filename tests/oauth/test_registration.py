"""Dynamic client registration (RFC 7591) and the clean-up of abandoned registrations."""

import json
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import Application, Grant

from accounts import tasks
from accounts.connections import clear_abandoned_registrations, record_consent
from tests.oauth.oauthutil import CLAUDE, registration


pytestmark = pytest.mark.django_db


def _post(body: str, **extra):
    return Client(**extra).post("/o/register/", body, content_type="application/json")


def test_a_public_client_registers_without_a_secret():
    before = int(time.time())
    response = _post(registration(client_name="MCP Inspector"))
    data = response.json()
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    assert data["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in data
    assert "client_secret_expires_at" not in data
    assert before - 1 <= data["client_id_issued_at"] <= time.time() + 1
    assert data["redirect_uris"] == [CLAUDE]
    app = Application.objects.get(client_id=data["client_id"])
    assert (app.client_type, app.registration_source, app.algorithm) == ("public", "dcr", "RS256")


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_a_confidential_client_gets_a_secret_that_never_expires(method):
    data = _post(registration(token_endpoint_auth_method=method)).json()
    assert data["client_secret"]
    assert data["client_secret_expires_at"] == 0
    assert data["token_endpoint_auth_method"] == method
    assert data["client_id_issued_at"] > 0


@pytest.mark.parametrize(
    "uris",
    [
        ["cursor://anysphere.cursor-mcp/oauth/callback", "https://www.cursor.com/agents/mcp/oauth/callback"],
        ["http://localhost:8787/callback"],
        ["http://127.0.0.1/", "http://127.0.0.1:33418/", "https://vscode.dev/redirect"],
        ["http://[::1]:9000/callback"],
        ["http://localhost:6274/oauth/callback", "http://localhost:6274/oauth/callback/debug"],
    ],
)
def test_app_schemes_and_loopback_redirect_uris_are_accepted(uris):
    response = _post(registration(redirect_uris=uris))
    assert response.status_code == 201, response.content
    assert response.json()["redirect_uris"] == uris


@pytest.mark.parametrize(
    ("uris", "error"),
    [
        (["http://evil.example/callback"], "invalid_redirect_uri"),
        (["https://ok.example/cb", "http://192.168.1.10/cb"], "invalid_redirect_uri"),
        (["javascript:alert(1)"], "invalid_client_metadata"),
        (["data:text/html,hi"], "invalid_client_metadata"),
        (["https://ok.example/cb#fragment"], "invalid_client_metadata"),
    ],
)
def test_unsafe_redirect_uris_are_refused(uris, error):
    response = _post(registration(redirect_uris=uris))
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert not Application.objects.exists()


def test_loopback_redirects_match_any_port_but_nothing_else():
    app = Application.objects.get(
        client_id=_post(registration(redirect_uris=["http://127.0.0.1/cb"])).json()["client_id"]
    )
    assert app.redirect_uri_allowed("http://127.0.0.1:51234/cb")
    assert not app.redirect_uri_allowed("http://127.0.0.1:51234/other")
    assert not app.redirect_uri_allowed("http://127.0.0.1:51234/cb?x=1")


def test_registration_is_rate_limited_per_address(settings):
    settings.OAUTH_REGISTRATION_RATE_LIMIT = 3
    for _ in range(3):
        assert _post(registration()).status_code == 201
    response = _post(registration())
    assert response.status_code == 429
    assert response.json()["error"] == "too_many_requests"
    assert 0 < int(response["Retry-After"]) <= settings.OAUTH_REGISTRATION_RATE_WINDOW_S
    # Another address is counted on its own.
    assert _post(registration(), REMOTE_ADDR="203.0.113.9").status_code == 201


def test_abandoned_registrations_are_cleaned_up_and_authorized_ones_kept(alice, acme):

    old = timezone.now() - timedelta(days=2)
    abandoned, authorized, fresh = (_post(registration()).json()["client_id"] for _ in range(3))
    Application.objects.filter(client_id__in=[abandoned, authorized]).update(created=old)
    grant = Grant.objects.create(
        application=Application.objects.get(client_id=authorized),
        user=alice,
        code="c",
        expires=old,
        redirect_uri=CLAUDE,
        scope="openid",
    )
    record_consent(grant=grant, workspace=acme)
    grant.delete()  # the code was used long ago; the connection remains

    assert clear_abandoned_registrations() == 1
    assert set(Application.objects.values_list("client_id", flat=True)) == {authorized, fresh}


def test_an_update_is_held_to_the_same_redirect_uri_policy():
    data = _post(registration()).json()
    client = Client(headers={"Authorization": f"Bearer {data['registration_access_token']}"})
    url = f"/o/register/{data['client_id']}/"
    refused = client.put(url, registration(redirect_uris=["http://evil.example/cb"]), content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_redirect_uri"
    accepted = client.put(url, registration(redirect_uris=["http://127.0.0.1/cb"]), content_type="application/json")
    assert accepted.status_code == 200
    assert accepted.json()["redirect_uris"] == ["http://127.0.0.1/cb"]


def test_the_clean_up_tasks_run(settings):
    names = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"accounts.tasks.clear_expired_tokens", "accounts.tasks.clear_abandoned_registrations"} <= names
    stale = _post(registration()).json()["client_id"]
    Application.objects.filter(client_id=stale).update(created=timezone.now() - timedelta(days=2))
    assert tasks.clear_abandoned_registrations.delay().get() == 1
    tasks.clear_expired_tokens.delay().get()
    assert not Application.objects.filter(client_id=stale).exists()


# ------------------------------------------------- RFC 7591 §3.2.1: the response echoes what was registered


def test_the_response_echoes_every_registered_field():
    metadata = {
        "client_name": "VS Code",
        "redirect_uris": ["https://vscode.dev/redirect", "http://127.0.0.1/", "http://127.0.0.1:33418/"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
    }
    data = _post(json.dumps(metadata)).json()
    for field, value in metadata.items():
        assert data[field] == value, field
    assert data["client_id"] and data["client_id_issued_at"] > 0
    assert data["registration_access_token"] and data["registration_client_uri"].endswith(f"/{data['client_id']}/")


def test_response_types_are_echoed_even_when_the_client_sent_none():
    data = _post(registration()).json()
    assert data["response_types"] == ["code"]
    assert "application_type" not in data


def test_fields_that_are_not_stored_are_not_claimed():
    data = _post(
        registration(
            scope="claudeai",
            client_uri="https://code.visualstudio.com",
            logo_uri="https://example.com/logo.png",
            contacts=["dev@example.com"],
        )
    ).json()
    # DOT registers no scope (any client may ask for any scope the metadata lists; the user decides)
    # and stores neither URI: echoing them would claim what the server does not keep.
    for field in ("scope", "client_uri", "logo_uri", "contacts"):
        assert field not in data, field


def test_unsupported_grant_and_response_types_beside_the_code_flow_are_dropped():
    # Older VS Code registers the device grant along with the code flow; DOT refused the whole
    # registration ("only one grant type per application").
    data = _post(
        registration(
            grant_types=["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
            response_types=["code", "token"],
        )
    ).json()
    assert data["grant_types"] == ["authorization_code", "refresh_token"]
    assert data["response_types"] == ["code"]


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({"grant_types": ["client_credentials"]}, "invalid_client_metadata"),
        ({"grant_types": ["urn:ietf:params:oauth:grant-type:device_code"]}, "invalid_client_metadata"),
        ({"grant_types": ["implicit"]}, "invalid_client_metadata"),
        ({"grant_types": "authorization_code"}, "invalid_client_metadata"),
        ({"response_types": ["token"]}, "invalid_client_metadata"),
        ({"response_types": "code"}, "invalid_client_metadata"),
        ({"application_type": "desktop"}, "invalid_client_metadata"),
        ({"application_type": 1}, "invalid_client_metadata"),
        ({"client_name": {"en": "Client"}}, "invalid_client_metadata"),
        ({"redirect_uris": ["http://127.0.0.1:99999/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://[::1/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://app.example/\x00"]}, "invalid_redirect_uri"),
    ],
    ids=[
        "client-credentials",
        "device-only",
        "implicit",
        "grant-string",
        "token-response",
        "response-string",
        "app-type",
        "app-type-int",
        "name-object",
        "bad-port",
        "bad-ipv6",
        "control-char",
    ],
)
def test_metadata_the_server_cannot_honour_is_refused(metadata, error):
    response = _post(registration(**metadata))
    assert response.status_code == 400, response.content
    assert response.json()["error"] == error
    assert not Application.objects.exists()


def test_malformed_and_oversized_bodies_get_json_errors(settings):
    deep = _post("[" * 5_000 + "]" * 5_000)
    assert deep.status_code == 400
    assert deep.json()["error"] == "invalid_client_metadata"
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    huge = _post(registration(client_name="x" * 2_000))
    assert huge.status_code == 400
    assert huge.json()["error"] == "invalid_client_metadata"


def test_reading_and_updating_a_registration_answer_the_same_fields():
    data = _post(registration(application_type="web")).json()
    client = Client(headers={"Authorization": f"Bearer {data['registration_access_token']}"})
    url = f"/o/register/{data['client_id']}/"
    read = client.get(url).json()
    assert read["response_types"] == ["code"]
    assert read["client_id_issued_at"] == data["client_id_issued_at"]
    updated = client.put(url, registration(application_type="native"), content_type="application/json")
    assert updated.status_code == 200
    assert (updated.json()["response_types"], updated.json()["application_type"]) == (["code"], "native")
    refused = client.put(url, registration(grant_types=["client_credentials"]), content_type="application/json")
    assert refused.status_code == 400


def test_the_metadata_offers_client_id_metadata_documents_and_keeps_registration():
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        metadata = Client().get(path).json()
        assert metadata["client_id_metadata_document_supported"] is True, path
        assert metadata["registration_endpoint"].endswith("/o/register/"), path
        assert "none" in metadata["token_endpoint_auth_methods_supported"], path
