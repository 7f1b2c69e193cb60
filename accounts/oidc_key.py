"""The RSA key that signs OpenID Connect ID tokens in development and tests.

Production sets ``OIDC_RSA_PRIVATE_KEY``. Without it, development and test processes share one
key kept under ``var/``: every process (the test runner, the servers it starts, several
workers) must publish and sign with the same key, so generating one per process would not do.
Imported by the settings module, so it uses nothing from Django.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def development_key(path: Path) -> str:
    """The PEM private key stored at ``path``, created there on first use."""
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        try:
            # link() fails if another process got there first; then its key is the one.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text()
