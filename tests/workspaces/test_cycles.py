"""Quota cycles roll over on the anchor day (idempotently), and owners are warned at 80% and 100%."""

from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.core import mail

from tests.factories import MembershipFactory
from workspaces import live, tasks, usage
from workspaces.models import Membership, UsagePeriod, Workspace
from workspaces.quota_warnings import warn_quota_thresholds
from workspaces.services import create_api_key, roll_usage_periods
from workspaces.signals import usage_changed


pytestmark = pytest.mark.django_db


@pytest.fixture
def anchored(acme):
    Workspace.objects.filter(pk=acme.pk).update(billing_anchor_day=15)
    acme.refresh_from_db()
    return acme


def test_the_roll_opens_the_new_cycle_on_the_anchor_day_and_twice_changes_nothing(anchored):
    roll_usage_periods(datetime(2026, 3, 14, 23, tzinfo=UTC))
    assert list(UsagePeriod.objects.values_list("starts_at", flat=True)) == [datetime(2026, 2, 15, tzinfo=UTC)]

    assert roll_usage_periods(datetime(2026, 3, 15, 0, 30, tzinfo=UTC)) == 1
    march = UsagePeriod.objects.get(starts_at=datetime(2026, 3, 15, tzinfo=UTC))
    assert march.ends_at == datetime(2026, 4, 15, tzinfo=UTC)
    assert (march.requests_limit, march.avatar_requests) == (1000, 0)

    before = list(UsagePeriod.objects.order_by("pk").values())
    assert roll_usage_periods(datetime(2026, 3, 15, 1, 30, tzinfo=UTC)) == 0
    assert list(UsagePeriod.objects.order_by("pk").values()) == before


def test_the_roll_writes_the_previous_cycles_final_count(anchored, alice, eileen, client):
    raw = create_api_key(actor=alice, workspace=anchored, kind="secret", name="Server")
    for _ in range(3):
        assert client.get("/v1/avatar", {"username": "eileen-collins"}, headers={"x-api-key": raw}).status_code == 302
    period = usage.current_period(anchored)
    assert period.avatar_requests == 0  # counted live, not yet written
    roll_usage_periods()
    period.refresh_from_db()
    assert period.avatar_requests == 3
    roll_usage_periods()
    period.refresh_from_db()
    assert period.avatar_requests == 3


def test_the_celery_task_runs_the_roll(anchored):
    assert tasks.roll_usage_periods.delay().get() == 1
    assert UsagePeriod.objects.filter(workspace=anchored).count() == 1
    assert "roll-usage-periods" in settings.CELERY_BEAT_SCHEDULE
    assert settings.CELERY_BEAT_SCHEDULE["roll-usage-periods"]["task"] == "workspaces.tasks.roll_usage_periods"


def _spend(workspace, *, profiles):
    period = usage.current_period(workspace)
    UsagePeriod.objects.filter(pk=period.pk).update(avatar_new_profiles=profiles)
    period.refresh_from_db()
    return period


def test_owners_are_warned_once_at_80_and_once_at_100_percent(acme, alice, django_capture_on_commit_callbacks):
    MembershipFactory(workspace=acme, role=Membership.Role.OWNER, user__email="olga@example.com")
    MembershipFactory(workspace=acme, role=Membership.Role.MEMBER, user__email="max@example.com")

    with django_capture_on_commit_callbacks(execute=True):
        assert warn_quota_thresholds(_spend(acme, profiles=79), requests_used=0) == []
        assert warn_quota_thresholds(_spend(acme, profiles=80), requests_used=0) == [("new_profiles", 80)]
        assert warn_quota_thresholds(_spend(acme, profiles=90), requests_used=0) == []
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "olga@example.com"]
    assert mail.outbox[0].subject == "Acme has used 80% of its new profiles for this cycle"
    assert "80 of its 100 new profiles" in mail.outbox[0].body
    assert "/w/acme/billing/" in mail.outbox[0].body

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert warn_quota_thresholds(_spend(acme, profiles=100), requests_used=0) == [("new_profiles", 100)]
        assert warn_quota_thresholds(_spend(acme, profiles=100), requests_used=0) == []
    assert len(mail.outbox) == 2
    assert mail.outbox[0].subject == "Acme has used all of its new profiles for this cycle"


def test_a_stale_copy_of_the_period_cannot_warn_twice(acme, django_capture_on_commit_callbacks):
    first = _spend(acme, profiles=85)
    second = UsagePeriod.objects.get(pk=first.pk)  # another worker's view, read before either warned
    with django_capture_on_commit_callbacks(execute=True):
        assert warn_quota_thresholds(first, requests_used=0) == [("new_profiles", 80)]
        assert warn_quota_thresholds(second, requests_used=0) == []
    assert len(mail.outbox) == 1


def test_jumping_past_both_thresholds_sends_only_the_100_percent_email(acme, django_capture_on_commit_callbacks):
    period = usage.current_period(acme)
    with django_capture_on_commit_callbacks(execute=True):
        assert warn_quota_thresholds(period, requests_used=1000) == [("requests", 100)]
    assert [m.subject for m in mail.outbox] == ["Acme has used all of its avatar requests for this cycle"]
    period.refresh_from_db()
    assert period.requests_warned_80_at and period.requests_warned_100_at


def test_the_flusher_path_warns_as_requests_are_counted(
    acme, alice, eileen, client, django_capture_on_commit_callbacks
):
    period = usage.current_period(acme)
    UsagePeriod.objects.filter(pk=period.pk).update(requests_limit=5)
    raw = create_api_key(actor=alice, workspace=acme, kind="secret", name="Server")
    for _ in range(4):
        client.get("/v1/avatar", {"username": "eileen-collins"}, headers={"x-api-key": raw})
    # The flusher warns itself: not through the dashboard's push receiver, which only pushes.
    usage_changed.disconnect(live.usage_written)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            usage.flush_now(force=True)
    finally:
        usage_changed.connect(live.usage_written)
    assert [m.subject for m in mail.outbox] == ["Acme has used 80% of its avatar requests for this cycle"]


def test_the_beat_task_warns_too(acme, django_capture_on_commit_callbacks):
    _spend(acme, profiles=100)
    with django_capture_on_commit_callbacks(execute=True):
        roll_usage_periods()
        roll_usage_periods()
    assert [m.subject for m in mail.outbox] == ["Acme has used all of its new profiles for this cycle"]
