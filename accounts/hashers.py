"""A fast keyed digest for OAuth client secrets.

Django's password hashers are slow on purpose (PBKDF2: ~0.5 s of CPU) because people choose guessable
passwords. A client secret is 128 random characters from DOT's generator, far beyond any brute force, so
the work factor protects nothing and costs half a second of CPU on every token request, which anyone can
trigger with a wrong secret. This hasher stores HMAC-SHA256 of the secret instead, keyed with a key
derived from SECRET_KEY (``salted_hmac``): a leaked database alone does not even allow an offline check.

It is in PASSWORD_HASHERS after the default, so user passwords keep PBKDF2, and DOT uses it for client
secrets through OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"]. Secrets stored with another hasher (PBKDF2,
before this one existed) still verify: Django picks the hasher from the stored prefix.

Rotating SECRET_KEY: digests name the key they were made with (a short fingerprint, not the key), and
those made with a key in SECRET_KEY_FALLBACKS still verify; ``must_update`` then says so, and
``accounts.client_auth`` re-hashes the secret with the current key on the client's next successful
authentication. Dropping the old key from the fallbacks before every client came back locks out those
that did not (they register again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.hashers import BasePasswordHasher, mask_hash
from django.utils.crypto import constant_time_compare, salted_hmac


if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


KEY_SALT = "accounts.hashers.ClientSecretHasher"


def _key_id(key: str) -> str:
    """Names a key in a digest without revealing it: 32 bits of an HMAC of a constant under the key."""
    return salted_hmac(f"{KEY_SALT}.key-id", "key-id", secret=key, algorithm="sha256").hexdigest()[:8]


class ClientSecretHasher(BasePasswordHasher):
    """``avtrz_hmac_sha256$<key id>$<salt>$<hex HMAC-SHA256 of salt and secret>``."""

    algorithm = "avtrz_hmac_sha256"

    def encode(self, password: str, salt: str, key: str | None = None) -> str:
        self._check_encode_args(password, salt)  # type: ignore[attr-defined]  # Django's, left out of django-stubs
        key = settings.SECRET_KEY if key is None else key
        digest = salted_hmac(KEY_SALT, f"{salt}${password}", secret=key, algorithm="sha256").hexdigest()
        return f"{self.algorithm}${_key_id(key)}${salt}${digest}"

    def decode(self, encoded: str) -> dict[str, str]:
        algorithm, key_id, salt, digest = encoded.split("$", 3)
        if algorithm != self.algorithm:
            raise ValueError(f"not an {self.algorithm} digest")
        return {"algorithm": algorithm, "key_id": key_id, "salt": salt, "hash": digest}

    def verify(self, password: str, encoded: str) -> bool:
        try:
            decoded = self.decode(encoded)
        except ValueError:
            return False
        candidates = [key for key in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS) if key]
        return any(
            constant_time_compare(encoded, self.encode(password, decoded["salt"], key))
            for key in candidates
            if _key_id(key) == decoded["key_id"]
        )

    def must_update(self, encoded: str) -> bool:
        """True for a digest made with a fallback key: re-hash it with the current one."""
        return self.decode(encoded)["key_id"] != _key_id(settings.SECRET_KEY)

    def safe_summary(self, encoded: str) -> dict[StrOrPromise, Any]:
        decoded = self.decode(encoded)
        return {
            "algorithm": decoded["algorithm"],
            "key": decoded["key_id"],
            "salt": mask_hash(decoded["salt"], show=2),
            "hash": mask_hash(decoded["hash"]),
        }

    def harden_runtime(self, password: str, encoded: str) -> None:
        pass  # no work factor to catch up with
