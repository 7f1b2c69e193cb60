"""The usage page, the overview and usage.json: meters against quota, the daily chart, refused requests."""

from datetime import timedelta

import pytest
from django.utils import timezone

from workspaces import usage
from workspaces.charts import daily_chart
from workspaces.models import DailyUsage
from workspaces.services import create_api_key


pytestmark = pytest.mark.django_db


@pytest.fixture
def raw_key(alice, acme):
    return create_api_key(actor=alice, workspace=acme, kind="publishable", name="Site")


def test_a_metered_request_shows_on_the_meters_and_in_the_json(bob_client, client, raw_key, eileen, acme):
    assert client.get("/v1/avatar", {"key": raw_key, "username": "eileen-collins"}).status_code == 302
    client.get("/v1/avatar", {"key": raw_key, "username": "eileen-collins"})
    usage.flush_now(force=True)
    bob_client.force_login(acme.memberships.get(role="member").user)

    data = bob_client.get("/w/acme/usage.json").json()
    assert data["requests"] == {"used": 2, "limit": 1000, "percent": 0, "level": "ok"}
    assert data["new_profiles"]["used"] == 1
    assert data["keys"] == 1 and data["connections"] == 0
    assert data["plan"] == "Free"

    body = bob_client.get("/w/acme/usage/").content.decode()
    assert '<strong data-live="requests.used">2</strong>' in body
    assert 'max="1000" value="2"' in body
    assert DailyUsage.objects.get(workspace=acme).api_hits == 2


def test_usage_json_is_not_cached(bob_client):
    assert "no-store" in bob_client.get("/w/acme/usage.json")["Cache-Control"]


def test_the_chart_is_server_side_svg_with_a_table_fallback(bob_client, acme):
    today = timezone.now().date()
    DailyUsage.objects.create(workspace=acme, day=today, api_hits=30, api_misses=5, mcp_hits=10, mcp_misses=1)
    DailyUsage.objects.create(workspace=acme, day=today - timedelta(days=3), api_hits=7)
    DailyUsage.objects.create(workspace=acme, day=today - timedelta(days=40), api_hits=999)  # outside 30 days
    response = bob_client.get("/w/acme/usage/")
    body = response.content.decode()
    assert '<svg class="chart"' in body and 'role="img"' in body
    assert '<title id="chart-title">' in body and '<desc id="chart-desc">' in body
    assert "53 requests in 30 days" in body
    assert body.count('<rect class="api-hit"') == 2
    assert body.count('<rect class="mcp-miss"') == 1
    assert "Show the numbers as a table" in body
    chart = response.context["chart"]
    assert len(chart.days) == 30 and chart.peak.total == 46


@pytest.mark.parametrize("page", ["/w/acme/usage/", "/w/acme/billing/"])
def test_an_empty_chart_says_no_requests_yet_and_how_to_make_the_first(bob_client, page):
    body = bob_client.get(page).content.decode()
    assert "No requests yet" in body
    assert 'href="/w/acme/keys/"' in body and "/v1/avatar?key=pk_live_" in body
    assert '<svg class="chart"' not in body  # no blank grid


def test_a_chart_with_requests_has_no_empty_state(bob_client, acme):
    DailyUsage.objects.create(workspace=acme, day=timezone.now().date(), api_hits=1)
    body = bob_client.get("/w/acme/usage/").content.decode()
    assert "No requests yet" not in body and '<svg class="chart"' in body


def test_chart_bars_stack_and_fit_the_plot(acme):
    today = timezone.now().date()
    DailyUsage.objects.create(workspace=acme, day=today, api_hits=60, mcp_hits=40)
    chart = daily_chart(acme, today=today)
    last = chart.days[-1]
    assert [s.css for s in last.segments] == ["api-hit", "mcp-hit"]
    top = chart.ticks[-1]
    assert top[1] == 100  # gridlines on round numbers
    assert last.segments[1].y == pytest.approx(top[0])  # 100 requests reach the top gridline
    assert last.segments[0].y == pytest.approx(last.segments[1].y + last.segments[1].height)
    assert chart.days[0].segments == []


def test_refused_requests_of_the_last_seven_days(bob_client, acme):
    today = timezone.now().date()
    DailyUsage.objects.create(workspace=acme, day=today, refused_401=3, refused_429=2)
    DailyUsage.objects.create(workspace=acme, day=today - timedelta(days=6), refused_402=4)
    DailyUsage.objects.create(workspace=acme, day=today - timedelta(days=7), refused_402=50)
    errors = bob_client.get("/w/acme/usage/").context["errors"]
    assert errors["totals"] == [3, 4, 2]
    assert len(errors["days"]) == 7


def test_no_errors_says_so(bob_client):
    assert "No refused requests in the last 7 days." in bob_client.get("/w/acme/usage/").content.decode()


def test_meters_warn_near_the_quota(bob_client, acme):
    period = usage.current_period(acme)
    period.avatar_new_profiles = 95
    period.save()
    data = bob_client.get("/w/acme/usage.json").json()
    assert data["new_profiles"] == {"used": 95, "limit": 100, "percent": 95, "level": "high"}
    assert 'class="meter high"' in bob_client.get("/w/acme/usage/").content.decode()


def test_overview_summarises_meters_keys_and_connections(bob_client, raw_key, alice, acme, make_connection):
    make_connection(alice, acme)
    response = bob_client.get("/w/acme/")
    body = response.content.decode()
    assert response.context["live"]["keys"] == 1
    assert '<p class="stat-value" data-live="connections">1</p>' in body
    assert "Free plan" in body
    for link in ["/w/acme/keys/", "/w/acme/connect/", "/w/acme/usage/", "/w/acme/billing/"]:
        assert f'href="{link}"' in body
