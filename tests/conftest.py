import importlib
import uuid

import pytest
from django.core.cache import cache
from django.test import Client

from avtrz.avatars import fastpath
from avtrz.celery import app as celery_app
from avtrz.lib import hotcache
from tests import services
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from workspaces import usage
from workspaces.models import Membership


# The launch plans as the migrations leave them: 0002's price list with 0010's bursts.
_BURST_SECONDS = importlib.import_module("workspaces.migrations.0010_plan_burst").BURST_SECONDS
LAUNCH_PLANS = [
    {**plan, "burst": plan["requests_per_second"] * _BURST_SECONDS}
    for plan in importlib.import_module("workspaces.migrations.0002_seed_plans").PLANS
]


def pytest_configure(config):
    (services.ROOT / "var").mkdir(exist_ok=True)
    # Tasks run in-process unless a test starts a real worker on purpose.
    celery_app.conf.task_always_eager = True


def pytest_terminal_summary(terminalreporter):
    if services.SKIPPED_SERVICES:
        terminalreporter.write_line(
            "services absent, their tests skipped: " + ", ".join(sorted(services.SKIPPED_SERVICES)), yellow=True
        )


@pytest.fixture(autouse=True)
def _isolated(request, settings, tmp_path):
    """A clean cache per test, media in a temporary folder, and the launch plans present
    (a transactional test flushes the tables the data migration filled)."""
    cache.clear()
    _forget_process_state()
    settings.MEDIA_ROOT = tmp_path / "media"
    # Usage counters live outside the database; a fresh namespace keeps tests from sharing them.
    settings.AVTRZ_COUNTER_PREFIX = f"test:{uuid.uuid4().hex}:"
    if "django_db_setup" in request.fixturenames:
        from workspaces.models import Plan

        for plan in LAUNCH_PLANS:
            Plan.objects.get_or_create(code=plan["code"], defaults=plan)
    yield
    cache.clear()


def _forget_process_state() -> None:
    """Per-process caches and counters outlive a test's database rollback; start each test without them."""
    hotcache.reset()
    fastpath._replays.clear()
    usage._counters = None
    usage._tally.clear()
    usage._dirty.clear()
    usage._unstored.clear()
    usage._flushed_at.clear()
    usage._touched_at.clear()


# Personas (as in healthchecks): Alice owns Acme, Bob is a member of Acme, Charlie has no access to it.
@pytest.fixture
def alice(db):
    return UserFactory(email="alice@example.com", name="Alice Example")


@pytest.fixture
def acme(alice):
    membership = MembershipFactory(
        user=alice, workspace=WorkspaceFactory(name="Acme", slug="acme"), role=Membership.Role.OWNER
    )
    return membership.workspace


@pytest.fixture
def bob(acme):
    user = UserFactory(email="bob@example.com", name="Bob Example")
    MembershipFactory(user=user, workspace=acme, role=Membership.Role.MEMBER)
    return user


@pytest.fixture
def charlie(db):
    user = UserFactory(email="charlie@example.com", name="Charlie Example")
    MembershipFactory(
        user=user, workspace=WorkspaceFactory(name="Charlie Co", slug="charlie-co"), role=Membership.Role.OWNER
    )
    return user


@pytest.fixture
def alice_client(client, alice, acme):
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(client, bob):
    client.force_login(bob)
    return client


@pytest.fixture
def charlie_client(client, charlie):
    client.force_login(charlie)
    return client


# Support staff with every permission, signed in to the admin (tests/admin, the crop review).
@pytest.fixture
def staff(db):
    return UserFactory(email="support@avtrz.dev", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff):
    client = Client()
    client.force_login(staff)
    return client
