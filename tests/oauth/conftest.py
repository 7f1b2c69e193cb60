import datetime
import ipaddress
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
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
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(certfile), str(keyfile)


@pytest.fixture(scope="module")
def cimd_host(tls_files) -> Iterator[FixtureServer]:
    certfile, keyfile = tls_files
    with FixtureServer(certfile=certfile, keyfile=keyfile) as server:
        yield server
