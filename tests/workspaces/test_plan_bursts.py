"""Plans carry a burst: seeded for the launch plans, shown where limits are shown, counted as a limit that drops."""

import pytest

from workspaces.models import Plan
from workspaces.services import change_plan


pytestmark = pytest.mark.django_db


def test_the_launch_plans_hold_twelve_seconds_of_their_rate():
    bursts = {plan.code: (plan.requests_per_second, plan.burst) for plan in Plan.objects.all()}
    assert bursts == {"free": (5, 60), "pro": (50, 600), "scale": (200, 2400)}


def test_the_billing_page_shows_each_plans_burst(alice_client):
    page = alice_client.get("/w/acme/billing/").content.decode()
    assert "5 requests per second with bursts of 60 at once" in page  # the workspace's own plan
    assert "50 requests per second, bursts of 600" in page  # Pro, offered


def test_a_downgrade_says_the_burst_drops_too(alice_client, alice, acme):
    change_plan(actor=alice, workspace=acme, plan=Plan.objects.get(code="pro"))
    page = alice_client.get("/w/acme/billing/").content.decode()
    assert "from 600 to 60 requests at once (10× fewer)" in page


def test_the_docs_list_each_plans_burst(client):
    page = client.get("/docs/how-it-works/").content.decode()
    assert '<th scope="col">Burst</th>' in page
    assert "<td>5</td><td>60</td>" in page
