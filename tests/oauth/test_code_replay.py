"""A replayed authorization code is refused, and the tokens of its first use are revoked
(RFC 6749 §4.1.2): whoever replays a code may have intercepted it, and the first redemption may
have been theirs."""

from urllib.parse import urlencode

import pytest
from django.test import Client

from accounts.connections import workspace_for_access_token
from tests.oauth.oauthutil import CLAUDE, authorize_params, authorize_path, consent_decision, pkce, query


pytestmark = pytest.mark.django_db


def _code(client, register, **decision):
    app = register(redirect_uris=[CLAUDE])
    verifier, challenge = pkce()
    authorize = authorize_path(authorize_params(app["client_id"], CLAUDE, challenge))
    page = client.get(authorize)
    answer = client.post(
        authorize,
        urlencode(consent_decision(page.content.decode(), **decision)),
        content_type="application/x-www-form-urlencoded",
    )
    return app, query(answer["Location"])["code"], verifier


def _token(app, **form):
    return Client().post("/o/token/", {"client_id": app["client_id"], **form})


def _redeem(app, code, verifier):
    return _token(app, grant_type="authorization_code", code=code, redirect_uri=CLAUDE, code_verifier=verifier)


def _refresh(app, refresh_token):
    return _token(app, grant_type="refresh_token", refresh_token=refresh_token)


def test_a_replayed_code_revokes_the_tokens_of_its_first_use_and_their_rotations(alice_client, register, acme):
    app, code, verifier = _code(alice_client, register)
    first = _redeem(app, code, verifier).json()
    rotated = _refresh(app, first["refresh_token"]).json()
    assert workspace_for_access_token(rotated["access_token"]) is not None

    replay = _redeem(app, code, verifier)

    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert workspace_for_access_token(first["access_token"]) is None
    assert workspace_for_access_token(rotated["access_token"]) is None
    for refresh_token in (first["refresh_token"], rotated["refresh_token"]):
        assert _refresh(app, refresh_token).json()["error"] == "invalid_grant"


def test_a_replayed_code_revokes_an_access_token_that_came_without_a_refresh_token(alice_client, register, acme):
    app, code, verifier = _code(alice_client, register, stay_connected=False)
    first = _redeem(app, code, verifier).json()
    assert "refresh_token" not in first

    assert _redeem(app, code, verifier).status_code == 400
    assert workspace_for_access_token(first["access_token"]) is None


def test_a_replay_touches_no_other_connection(alice_client, register, acme):
    app, code, verifier = _code(alice_client, register)
    _other_app, other_code, other_verifier = _code(alice_client, register)
    other = _redeem(_other_app, other_code, other_verifier).json()
    _redeem(app, code, verifier)

    assert _redeem(app, code, verifier).status_code == 400
    assert workspace_for_access_token(other["access_token"]) is not None
    assert _refresh(_other_app, other["refresh_token"]).status_code == 200


def test_an_unknown_code_is_refused_without_revoking_anything(alice_client, register, acme):
    app, code, verifier = _code(alice_client, register)
    first = _redeem(app, code, verifier).json()
    assert _redeem(app, "not-a-code", verifier).json()["error"] == "invalid_grant"
    assert workspace_for_access_token(first["access_token"]) is not None
