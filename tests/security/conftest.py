# The API fixtures of the avatar tests: Acme with a generous rate limit (the limits under test here are per
# address), its keys, and a profile with a photo.
from tests.avatars.conftest import acme, eileen, pk, sk  # noqa: F401
