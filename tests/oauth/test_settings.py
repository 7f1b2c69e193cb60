"""The authorization server's configuration guards."""

import secrets
import subprocess
import sys

from tests import services


def test_production_refuses_to_start_without_an_id_token_signing_key():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=services.ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "AVTRZ_KEY_DERIVATION_SECRET": secrets.token_urlsafe(50),
            "PUBLIC_BASE_URL": "https://avtrz.example",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Set OIDC_RSA_PRIVATE_KEY" in result.stderr
