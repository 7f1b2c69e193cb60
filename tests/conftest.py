import fcntl
import importlib
import itertools
import os
import uuid
from contextlib import ExitStack, contextmanager

import pytest
from django.core.cache import cache
from django.test import Client
from hypothesis import settings as hypothesis_settings

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


# Lines a test adds to the run's summary (`request.node.user_properties.append(("summary", line))`):
# parallel workers' output is not shown, their reports reach the controller.
SUMMARIES: list[str] = []


# No deadline on property tests: Hypothesis's 200 ms per example is a timing assertion, and with four
# workers beside Chromium and server processes one slow example failed a correct test ("Unreliable test
# timings"). Speed is measured in bench/, not here.
hypothesis_settings.register_profile("avtrz", deadline=None)
hypothesis_settings.load_profile("avtrz")


def pytest_configure(config):
    (services.ROOT / "var").mkdir(exist_ok=True)
    # Tasks run in-process unless a test starts a real worker on purpose.
    celery_app.conf.task_always_eager = True


# Tests that take long mostly waiting (on browsers, servers, killed workers, timeouts): in the parallel suite
# each worker starts its share of them early, so their waits overlap with the rest of the suite instead of
# ending it. Browser tests are found by their marker; these by their node id.
LONG_RUNNING = (
    "tests/faults/",
    "tests/production/test_tracing.py",
    "tests/avatars/test_removal_live.py",
    "tests/test_infrastructure.py::test_make_superuser",
)
# Before them, each worker but the first runs a few quick tests: a `serial` test, first on the first worker,
# then waits only for those to end before it has the machine to itself.
QUICK_LEAD = 3


def pytest_collection_modifyitems(config, items):
    """In the parallel suite, lay the tests out for the way pytest-xdist's worksteal hands them out (worker k
    gets the k-th contiguous share of the list, and idle workers later take from busy ones): the `serial`
    tests first, then each share opens with its part of the long-running tests, the rest following in
    collection order (a module's tests stay together, for its module-scoped fixtures)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers < 2:
        return
    serial = [item for item in items if item.get_closest_marker("serial")]
    long_running = [
        item
        for item in items
        if item not in serial and (item.get_closest_marker("browser") or item.nodeid.startswith(LONG_RUNNING))
    ]
    placed = {*serial, *long_running}
    rest = iter([item for item in items if item not in placed])
    laid_out, left = [], len(items)
    for worker in range(workers):
        share = left // (workers - worker)
        left -= share
        chunk = serial if worker == 0 else list(itertools.islice(rest, QUICK_LEAD))
        chunk = [*chunk, *long_running[worker::workers]]
        laid_out += [*chunk, *itertools.islice(rest, max(0, share - len(chunk)))]
    items[:] = [*laid_out, *rest]  # nothing is left in `rest` unless a share was smaller than its opening


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config, specs):
    """Each parallel worker on a Redis database of its own (REDIS_URL's number plus the worker's): set
    before the worker starts, since Django's settings read it at import."""
    if url := os.environ.get("REDIS_URL"):
        for index, spec in enumerate(specs):
            spec.env["REDIS_URL"] = services.worker_redis_url(url, index)


def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):  # a parallel worker: the controller writes the summary
        session.config.workeroutput["skipped_services"] = sorted(services.SKIPPED_SERVICES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    services.SKIPPED_SERVICES.update(getattr(node, "workeroutput", {}).get("skipped_services", ()))


def pytest_runtest_logreport(report):
    SUMMARIES.extend(value for name, value in report.user_properties if name == "summary" and report.when == "call")


def pytest_terminal_summary(terminalreporter):
    for line in SUMMARIES:
        terminalreporter.write_line(line)
    if services.SKIPPED_SERVICES:
        terminalreporter.write_line(
            "services absent, their tests skipped: " + ", ".join(sorted(services.SKIPPED_SERVICES)), yellow=True
        )


@pytest.fixture(scope="session")
def _run_locks(tmp_path_factory):
    """The files behind `_serial`, in the folder every worker of this run shares (None in one process)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return None
    shared = tmp_path_factory.getbasetemp().parent
    return shared / "serial.turnstile", shared / "serial.room"


# The machine to itself, kept from one `serial` test to the next when a worker runs several in a row:
# giving it back in between would let the other workers start their next tests, and the following serial
# test wait for them all to end.
_turn: ExitStack | None = None
_next_test: pytest.Item | None = None


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    global _next_test
    _next_test = nextitem  # read by `_serial`'s teardown, which runs inside this hook
    yield


@pytest.fixture(autouse=True)
def _serial(request, _run_locks):
    """A test marked `serial` runs alone: its worker waits until the others' tests end, and they start none
    meanwhile. Others share the machine (a shared lock each)."""
    global _turn
    if _run_locks is None:
        yield
        return
    if request.node.get_closest_marker("serial") is None:
        with _locked(*_run_locks, exclusive=False):
            yield
        return
    if _turn is None:
        _turn = ExitStack()
        _turn.enter_context(_locked(*_run_locks, exclusive=True))
    yield
    if _next_test is None or _next_test.get_closest_marker("serial") is None:
        _turn.close()
        _turn = None


@contextmanager
def _locked(turnstile_path, room_path, *, exclusive: bool):
    # A readers-writer lock that lets the writer in: everyone passes the turnstile, a serial test holds it
    # while it waits for the room to empty, so no new test slips in ahead of it.
    with turnstile_path.open("a") as turnstile, room_path.open("a") as room:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(room, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            if not exclusive:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(room, fcntl.LOCK_UN)
            if exclusive:
                fcntl.flock(turnstile, fcntl.LOCK_UN)


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
