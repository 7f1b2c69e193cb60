from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from django.test import Client

from tests.factories import MembershipFactory, WorkspaceFactory
from tests.fixture_server import FixtureServer
from tests.oauth.oauthutil import (
    CLAUDE,
    authorize_params,
    authorize_path,
    consent_decision,
    pkce,
    query,
    registration,
)
from tests.tls import self_signed
from workspaces.models import Membership


@pytest.fixture
def register(db):
    """Register a client over RFC 7591 as an anonymous caller; returns the registration response."""

    def _register(**metadata):
        response = Client().post("/o/register/", registration(**metadata), content_type="application/json")
        assert response.status_code == 201, response.content
        return response.json()

    return _register


@pytest.fixture
def globex(alice):
    """A second workspace of Alice's, as a member, to switch to on the consent screen."""
    workspace = WorkspaceFactory(name="Globex", slug="globex")
    MembershipFactory(user=alice, workspace=workspace, role=Membership.Role.MEMBER)
    return workspace


@pytest.fixture
def connect(register):
    """Run the whole flow in-process for a signed-in test client; returns (registration, token response)."""

    def _connect(client, *, app=None, workspace=None, redirect_uri=CLAUDE, **params):
        app = app or register(redirect_uris=[redirect_uri])
        verifier, challenge = pkce()
        authorize = authorize_path(authorize_params(app["client_id"], redirect_uri, challenge, **params))
        page = client.get(authorize)
        decision = client.post(
            authorize,
            urlencode(consent_decision(page.content.decode(), workspace=workspace)),
            content_type="application/x-www-form-urlencoded",
        )
        token = Client().post(
            "/o/token/",
            {
                "grant_type": "authorization_code",
                "code": query(decision["Location"])["code"],
                "redirect_uri": redirect_uri,
                "client_id": app["client_id"],
                "code_verifier": verifier,
            },
        )
        assert token.status_code == 200, token.content
        return app, token.json()

    return _connect


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1, so the CIMD document can be served over https."""
    return self_signed(tmp_path_factory.mktemp("tls"), "127.0.0.1")


@pytest.fixture(scope="module")
def cimd_host(tls_files) -> Iterator[FixtureServer]:
    certfile, keyfile = tls_files
    with FixtureServer(certfile=certfile, keyfile=keyfile) as server:
        yield server
