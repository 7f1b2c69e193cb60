"""Dynamic client registration (RFC 7591) and the clean-up of abandoned registrations."""

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
