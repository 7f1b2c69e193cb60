"""X-Forwarded-For and X-Forwarded-Proto are believed only from configured proxies (TRUSTED_PROXY_IPS,
default none).

Otherwise any client could send a new address with each request and escape every per-address limit
(sign-in, key guessing, registration), or talk plain HTTP and be taken for https (secure redirects, HSTS,
the sign-in's https-only next URLs). The server runs exactly as the Procfile's `web` line says.
"""

import secrets
import shlex
import sys

import pytest
import requests

from tests import services
from tests.test_infrastructure import PRODUCTION_ENV, _manage


LIMIT = 3  # invalid keys one address may send per window


def _procfile_web(port: int) -> list[str]:
    line = next(line for line in (services.ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    line = line.removeprefix("web:").replace("${PORT:-8000}", str(port)).replace("${WEB_CONCURRENCY:-2}", "1")
    command = shlex.split(line)
    assert command[0] == "uvicorn"
    return [sys.executable, "-m", *command]


def _serve(tmp_path, **env):
    port = services.free_port()
    env = services.server_env(AVTRZ_INVALID_KEY_LIMIT=str(LIMIT), PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", **env)
    return port, services.running(_procfile_web(port), env=env, port=port, log=tmp_path / "server.log")


def _guess(port: int, forwarded_for: str) -> int:
    """A made-up key, claiming to come from `forwarded_for`."""
    response = requests.get(
        f"http://127.0.0.1:{port}/v1/avatar",
        params={"key": "pk_live_" + secrets.token_urlsafe(24), "username": "eileen-collins"},
        headers={"X-Forwarded-For": forwarded_for},
        timeout=10,
    )
    return response.status_code


@pytest.mark.django_db(transaction=True)
def test_a_spoofed_forwarded_for_does_not_change_the_address_the_limits_see(tmp_path):
    port, server = _serve(tmp_path)
    with server:
        answers = [_guess(port, f"198.51.100.{n}") for n in range(LIMIT + 1)]
    assert answers == [401] * LIMIT + [429]  # one address (the peer's), whatever each request claimed


@pytest.mark.django_db(transaction=True)
def test_a_configured_proxy_is_believed(tmp_path):
    port, server = _serve(tmp_path, TRUSTED_PROXY_IPS="10.0.0.0/8,127.0.0.1")
    with server:
        others = [_guess(port, f"198.51.100.{n}") for n in range(LIMIT + 1)]
        one = [_guess(port, "203.0.113.7") for _ in range(LIMIT + 1)]
    assert others == [401] * (LIMIT + 1)  # different clients behind the proxy, each under the limit
    assert one == [401] * LIMIT + [429]  # and one client behind it is limited on its own address


def test_trusting_every_sender_is_refused():
    result = _manage("check", env={"DEBUG": "true", "TRUSTED_PROXY_IPS": "10.0.0.5,*"})
    assert result.returncode != 0
    assert "TRUSTED_PROXY_IPS: '*' is not an address or a network" in result.stderr


def _production(**env) -> dict[str, str]:
    """A production server (DEBUG off) that redirects plain HTTP to https, as deployed."""
    settings = {name: value for name, value in PRODUCTION_ENV.items() if name != "PUBLIC_BASE_URL"}
    return {**settings, "SECURE_SSL_REDIRECT": "true", **env}


def _health(port: int, proto: str) -> requests.Response:
    """`/healthz` over plain HTTP, claiming the client used `proto`."""
    return requests.get(
        f"http://127.0.0.1:{port}/healthz", headers={"X-Forwarded-Proto": proto}, allow_redirects=False, timeout=10
    )


@pytest.mark.django_db(transaction=True)
def test_a_client_claiming_https_on_plain_http_is_still_redirected_to_https(tmp_path):
    port, server = _serve(tmp_path, **_production())
    with server:
        claimed = _health(port, "https")
    assert claimed.status_code == 301
    assert claimed.headers["Location"] == f"https://127.0.0.1:{port}/healthz"
    assert "Strict-Transport-Security" not in claimed.headers


@pytest.mark.django_db(transaction=True)
def test_https_at_a_configured_proxy_is_believed(tmp_path):
    port, server = _serve(tmp_path, **_production(TRUSTED_PROXY_IPS="127.0.0.1"))
    with server:
        secure = _health(port, "https")
        plain = _health(port, "http")
    assert secure.status_code != 301  # served: the proxy says the client used https
    assert "Strict-Transport-Security" in secure.headers
    assert plain.status_code == 301  # the client used plain HTTP at the proxy
