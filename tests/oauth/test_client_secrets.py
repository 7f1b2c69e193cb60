"""Confidential clients' secrets: a fast keyed digest instead of PBKDF2, surviving a SECRET_KEY rotation
and upgrading older digests, and failed client authentication limited per client and per address."""

from __future__ import annotations

import base64
import time
from urllib.parse import quote, urlencode

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher, check_password, get_hasher, identify_hasher, make_password
from django.core.cache import cache
from django.test import Client
from oauth2_provider.models import Application
from redis.exceptions import ConnectionError as RedisConnectionError

from accounts.hashers import ClientSecretHasher
from tests.oauth.oauthutil import CLAUDE, authorize_params, authorize_path, consent_decision, pkce, query


pytestmark = pytest.mark.django_db

ALGORITHM = "avtrz_hmac_sha256"
OLD_KEY = "an-old-secret-key-that-was-rotated-out-0123456789abcdef"
NEW_KEY = "the-new-secret-key-after-the-rotation-0123456789abcdef"


def _token_request(
    app: dict, data: dict, *, method: str, secret: str | None = None, address="198.51.100.7", path="/o/token/"
):
    """POST to a client-authenticating endpoint as ``app``, with its secret (or ``secret``) sent ``method``'s way."""
    secret = app["client_secret"] if secret is None else secret
    extra = {}
    if method == "client_secret_basic":
        credentials = f"{quote(app['client_id'], safe='')}:{quote(secret, safe='')}"
        extra["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    else:
        data = {**data, "client_id": app["client_id"], "client_secret": secret}
    return Client(REMOTE_ADDR=address).post(
        path, urlencode(data), content_type="application/x-www-form-urlencoded", **extra
    )


def _authorize(client, app: dict) -> dict:
    """The user approves ``app`` on the consent screen; the code exchange's form fields."""
    verifier, challenge = pkce()
    path = authorize_path(authorize_params(app["client_id"], CLAUDE, challenge))
    page = client.get(path)
    decision = client.post(
        path, urlencode(consent_decision(page.content.decode())), content_type="application/x-www-form-urlencoded"
    )
    code = query(decision["Location"])["code"]
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": CLAUDE, "code_verifier": verifier}


def _stored(app: dict) -> str:
    return Application.objects.get(client_id=app["client_id"]).client_secret


# ---------------------------------------------------------------- the hasher


def test_client_secrets_are_stored_as_a_keyed_hmac_and_user_passwords_are_not(register, alice):
    app = register(token_endpoint_auth_method="client_secret_post")
    stored = _stored(app)
    assert stored.startswith(f"{ALGORITHM}$")
    assert app["client_secret"] not in stored
    assert check_password(app["client_secret"], stored)
    assert not check_password(app["client_secret"] + "x", stored)
    # People's passwords keep the default (slow) hasher.
    assert get_hasher("default").algorithm != ALGORITHM
    assert identify_hasher(alice.password).algorithm != ALGORITHM


def test_the_digest_is_keyed_with_the_secret_key(settings):
    hasher = ClientSecretHasher()
    encoded = hasher.encode("s3cret", "salt")
    assert hasher.verify("s3cret", encoded)
    settings.SECRET_KEY = NEW_KEY  # the same secret and salt under another key: no match
    assert hasher.encode("s3cret", "salt") != encoded
    assert not hasher.verify("s3cret", encoded)
    settings.SECRET_KEY_FALLBACKS = [OLD_KEY]
    assert not hasher.verify("s3cret", encoded)  # only the key that made it verifies it
    assert hasher.safe_summary(encoded)["algorithm"] == ALGORITHM


def test_checking_a_secret_is_cheap():
    hasher = ClientSecretHasher()
    encoded = make_password("a" * 128, hasher=ALGORITHM)
    start = time.perf_counter()
    for _ in range(200):
        assert hasher.verify("a" * 128, encoded)
    assert (time.perf_counter() - start) / 200 < 0.005  # PBKDF2 at Django's work factor: ~0.5 s each


# ---------------------------------------------------------------- confidential clients end to end


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_a_registered_confidential_client_exchanges_refreshes_and_revokes(alice_client, register, acme, method):
    app = register(token_endpoint_auth_method=method, client_name="Claude")
    assert app["token_endpoint_auth_method"] == method
    token = _token_request(app, _authorize(alice_client, app), method=method)
    assert token.status_code == 200, token.content
    refreshed = _token_request(
        app, {"grant_type": "refresh_token", "refresh_token": token.json()["refresh_token"]}, method=method
    )
    assert refreshed.status_code == 200, refreshed.content
    wrong = _token_request(
        app,
        {"grant_type": "refresh_token", "refresh_token": refreshed.json()["refresh_token"]},
        method=method,
        secret="not-the-secret",
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    revoked = _token_request(
        app,
        {"token": refreshed.json()["refresh_token"], "token_type_hint": "refresh_token"},
        method=method,
        path="/o/revoke_token/",
    )
    assert revoked.status_code == 200
    assert _stored(app).startswith(f"{ALGORITHM}$")


def test_a_secret_survives_a_secret_key_rotation_and_moves_to_the_new_key(client, alice, register, acme, settings):
    settings.SECRET_KEY = OLD_KEY
    client.force_login(alice)  # the session is signed with the key too
    app = register(token_endpoint_auth_method="client_secret_post")
    registered = _stored(app)
    data = _authorize(client, app)

    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_KEY, [OLD_KEY]
    token = _token_request(app, data, method="client_secret_post")
    assert token.status_code == 200, token.content
    rehashed = _stored(app)
    assert rehashed != registered and rehashed.startswith(f"{ALGORITHM}$")
    assert not ClientSecretHasher().must_update(rehashed)

    settings.SECRET_KEY_FALLBACKS = []  # the old key retired: the client was re-hashed, it still works
    refresh = {"grant_type": "refresh_token", "refresh_token": token.json()["refresh_token"]}
    assert _token_request(app, refresh, method="client_secret_post").status_code == 200


def test_a_rotation_without_the_old_key_in_the_fallbacks_refuses_the_secret(client, alice, register, acme, settings):
    settings.SECRET_KEY = OLD_KEY
    client.force_login(alice)  # the session is signed with the key too
    app = register(token_endpoint_auth_method="client_secret_basic")
    data = _authorize(client, app)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_KEY, []
    assert _token_request(app, data, method="client_secret_basic").status_code == 401


def test_a_secret_stored_with_pbkdf2_still_works_and_is_upgraded(alice_client, register, acme, monkeypatch):
    monkeypatch.setattr(PBKDF2PasswordHasher, "iterations", 1000)  # the stored digest names its own count
    app = register(token_endpoint_auth_method="client_secret_basic")
    legacy = make_password(app["client_secret"], hasher="pbkdf2_sha256")
    Application.objects.filter(client_id=app["client_id"]).update(client_secret=legacy)
    failed = _token_request(app, _authorize(alice_client, app), method="client_secret_basic", secret="wrong")
    assert failed.status_code == 401
    assert _stored(app) == legacy  # a failure upgrades nothing

    token = _token_request(app, _authorize(alice_client, app), method="client_secret_basic")
    assert token.status_code == 200, token.content
    upgraded = _stored(app)
    assert upgraded.startswith(f"{ALGORITHM}$")
    assert check_password(app["client_secret"], upgraded)


def test_public_clients_are_untouched(alice_client, register, acme):
    app = register(token_endpoint_auth_method="none")
    data = {**_authorize(alice_client, app), "client_id": app["client_id"]}
    assert Client().post("/o/token/", data).status_code == 200
    assert Application.objects.get(client_id=app["client_id"]).client_type == "public"


# ---------------------------------------------------------------- failed client authentication is limited


def _refresh_with(app: dict, secret: str, *, address="198.51.100.7", path="/o/token/", method="client_secret_post"):
    return _token_request(
        app,
        {"grant_type": "refresh_token", "refresh_token": "anything", "token": "anything"},
        method=method,
        secret=secret,
        address=address,
        path=path,
    )


def assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    assert 0 < int(response["Retry-After"]) <= 300
    body = response.json()
    assert body["error"] == "too_many_requests"
    assert "error_description" in body


def test_a_client_is_held_off_after_ten_failures(register, settings):
    app = register(token_endpoint_auth_method="client_secret_post")
    other = register(token_endpoint_auth_method="client_secret_post")
    for i in range(settings.OAUTH_CLIENT_AUTH_FAILURE_LIMIT):
        # From several addresses: the per-client count is what holds.
        assert _refresh_with(app, "wrong", address=f"203.0.113.{i}").status_code == 401
    assert_throttled(_refresh_with(app, "wrong", address="203.0.113.200"))
    # The right secret gets the same answer meanwhile: a blocked caller learns nothing.
    assert_throttled(_refresh_with(app, app["client_secret"], address="203.0.113.201"))
    assert_throttled(_refresh_with(app, "wrong", method="client_secret_basic", address="203.0.113.202"))
    # Another client is not held back.
    assert _refresh_with(other, "wrong", address="203.0.113.200").status_code == 401


def test_an_address_is_held_off_after_thirty_failures_across_clients(register, settings):
    apps = [register(token_endpoint_auth_method="client_secret_basic") for _ in range(4)]
    for i in range(settings.OAUTH_CLIENT_AUTH_FAILURE_ADDRESS_LIMIT):
        assert _refresh_with(apps[i % 3], "wrong", method="client_secret_basic").status_code == 401, i
    assert_throttled(_refresh_with(apps[3], "wrong", method="client_secret_basic"))
    assert _refresh_with(apps[3], "wrong", method="client_secret_basic", address="192.0.2.1").status_code == 401


@pytest.mark.parametrize("path", ["/o/token/", "/token", "/o/revoke_token/", "/o/introspect/"])
def test_every_client_authenticating_endpoint_is_limited(register, settings, path):
    settings.OAUTH_CLIENT_AUTH_FAILURE_LIMIT = 2
    app = register(token_endpoint_auth_method="client_secret_basic")
    for _ in range(2):
        assert _refresh_with(app, "wrong", path=path, method="client_secret_basic").status_code in (401, 403)
    assert_throttled(_refresh_with(app, "wrong", path=path, method="client_secret_basic"))
    assert_throttled(_refresh_with(app, app["client_secret"], path=path, method="client_secret_basic"))


def test_successes_do_not_count(alice_client, register, acme, settings):
    settings.OAUTH_CLIENT_AUTH_FAILURE_LIMIT = 2
    app = register(token_endpoint_auth_method="client_secret_post")
    for _ in range(3):
        assert _token_request(app, _authorize(alice_client, app), method="client_secret_post").status_code == 200


def test_the_limit_fails_open_without_the_cache(register, settings, monkeypatch):
    settings.OAUTH_CLIENT_AUTH_FAILURE_LIMIT = 1

    def unreachable(*args, **kwargs):
        raise RedisConnectionError("Redis is away")

    for name in ("get", "add", "incr"):
        monkeypatch.setattr(cache, name, unreachable)
    app = register(token_endpoint_auth_method="client_secret_post")
    for _ in range(3):
        assert _refresh_with(app, "wrong").status_code == 401


def test_introspection_with_a_bearer_token_is_not_a_failed_client_authentication(settings):
    settings.OAUTH_CLIENT_AUTH_FAILURE_ADDRESS_LIMIT = 1
    for _ in range(3):
        response = Client().post("/o/introspect/", {"token": "x"}, HTTP_AUTHORIZATION="Bearer not-a-token")
        assert response.status_code == 403


def test_unknown_client_ids_do_not_hold_off_an_address(register, settings):
    """A hosted connector's shared address sending stale, deleted clients' ids keeps its other clients."""
    settings.OAUTH_CLIENT_AUTH_FAILURE_ADDRESS_LIMIT = 3
    gone = {"client_id": "deleted-client", "client_secret": "whatever"}
    for _ in range(settings.OAUTH_CLIENT_AUTH_FAILURE_LIMIT):
        assert _refresh_with(gone, "whatever").status_code == 401
    assert_throttled(_refresh_with(gone, "whatever"))  # that id itself is held off
    app = register(token_endpoint_auth_method="client_secret_post")
    assert _refresh_with(app, "wrong").status_code == 401  # not 429: the address is not
