from tests.avatars.conftest import FakeLinkedIn, linkedin, pk  # noqa: F401 (fixtures these tests use)


def upstream_env(fake: FakeLinkedIn) -> dict[str, str]:
    """The environment that points a server or worker process at the fake LinkedIn."""
    return {
        "LINKEDIN_BASE_URL": fake.server.url("").rstrip("/"),
        "AVTRZ_PHOTO_HOSTS": "127.0.0.1",
        "AVTRZ_FETCH_ALLOW_PRIVATE": "127.0.0.1",
    }
