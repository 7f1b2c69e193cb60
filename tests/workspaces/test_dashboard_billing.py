"""Billing: plan changes (the service, the page), Stripe Checkout and portal, and signed webhooks."""

import json
import time
from types import SimpleNamespace

import pytest
import stripe

from avtrz.lib import hotcache
from workspaces import billing, keys, usage
from workspaces.models import AuditEvent, Plan, StripeEvent, Workspace
from workspaces.services import change_plan, create_api_key


pytestmark = pytest.mark.django_db

WEBHOOK_SECRET = "whsec_test_secret"


@pytest.fixture
def pro():
    return Plan.objects.get(code="pro")


@pytest.fixture
def stripe_on(settings, pro):
    settings.STRIPE_SECRET_KEY = "sk_test_dummy"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    pro.stripe_price_id = "price_pro"
    pro.save()


@pytest.fixture
def fake_stripe(monkeypatch):
    """Stands in for stripe.StripeClient: records the parameters, answers with a hosted page URL."""
    calls = {}

    def service(name):
        def create(params):
            calls[name] = params
            return SimpleNamespace(url=f"https://stripe.test/{name}")

        return SimpleNamespace(create=create)

    fake = SimpleNamespace(
        v1=SimpleNamespace(
            checkout=SimpleNamespace(sessions=service("checkout")),
            billing_portal=SimpleNamespace(sessions=service("portal")),
        )
    )
    monkeypatch.setattr(billing, "client", lambda: fake)
    return calls


def _deliver(client, event, *, secret=WEBHOOK_SECRET):
    """POST an event the way Stripe does, signed with the library's own signature scheme."""
    payload = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, int(time.time()))
    return client.post(
        "/billing/stripe/webhook/", payload, content_type="application/json", headers={"Stripe-Signature": header}
    )


def _event(kind, obj, event_id="evt_1"):
    return {"id": event_id, "object": "event", "type": kind, "data": {"object": obj}}


def _checkout_completed(event_id="evt_1"):
    return _event(
        "checkout.session.completed",
        {
            "object": "checkout.session",
            "mode": "subscription",
            "client_reference_id": "acme",
            "customer": "cus_123",
            "subscription": "sub_123",
            "metadata": {"workspace": "acme", "plan": "pro"},
        },
        event_id,
    )


def _subscription(kind, *, status="active", price="price_pro", event_id="evt_2"):
    items = {"object": "list", "data": [{"object": "subscription_item", "price": {"object": "price", "id": price}}]}
    return _event(kind, {"object": "subscription", "id": "sub_123", "status": status, "items": items}, event_id)


# ---------------------------------------------------------------- the service


def test_change_plan_applies_new_limits_at_once(alice, acme, pro, django_capture_on_commit_callbacks):
    raw = create_api_key(actor=alice, workspace=acme, kind="secret", name="Server")
    assert keys.load_context(raw).meter.requests_limit == 1000  # now cached
    with django_capture_on_commit_callbacks(execute=True):
        change_plan(actor=alice, workspace=acme, plan=pro)
    assert acme.plan == pro
    assert Workspace.objects.get(pk=acme.pk).plan == pro
    period = usage.current_period(acme)
    assert (period.requests_limit, period.new_profiles_limit, period.plan) == (50_000, 5_000, pro)
    assert keys.load_context(raw).meter.requests_limit == 50_000
    event = AuditEvent.objects.get(action="plan.changed")
    assert event.data == {"old": "free", "new": "pro", "source": "dashboard"}


def test_change_plan_to_the_same_plan_does_nothing(alice, acme):
    change_plan(actor=alice, workspace=acme, plan=acme.plan)
    assert not AuditEvent.objects.filter(action="plan.changed").exists()


def test_change_plan_clears_quota_warnings(alice, acme, pro):
    period = usage.current_period(acme)
    period.requests_warned_80_at = period.starts_at
    period.save()
    change_plan(actor=alice, workspace=acme, plan=pro)
    period.refresh_from_db()
    assert period.requests_warned_80_at is None


def test_change_plan_does_not_leave_stale_cached_contexts(alice, acme, pro, django_capture_on_commit_callbacks):
    raw = create_api_key(actor=alice, workspace=acme, kind="secret", name="Server")
    keys.load_context(raw)
    with django_capture_on_commit_callbacks(execute=True):
        change_plan(actor=None, workspace=acme, plan=pro)
    assert hotcache.get(keys.cache_key(raw)) is None


# ---------------------------------------------------------------- without Stripe


def test_without_stripe_paid_plans_go_through_support(alice_client, settings):
    body = alice_client.get("/w/acme/billing/").content.decode()
    assert f"mailto:{settings.AVTRZ_SUPPORT_EMAIL}?subject=Move%20Acme%20%28acme%29%20to%20Pro" in body
    assert "/billing/checkout/" not in body
    assert "$50" in body


def test_paid_plans_cannot_be_switched_to_directly(alice_client, acme):
    response = alice_client.post("/w/acme/billing/plan/", {"plan": "pro"})
    assert response.status_code == 400
    assert "paid plan" in response.content.decode()
    acme.refresh_from_db()
    assert acme.plan.code == "free"


@pytest.mark.parametrize("plan", ["scale", "nope", ""])
def test_hidden_or_unknown_plans_are_refused(alice_client, acme, plan):
    assert alice_client.post("/w/acme/billing/plan/", {"plan": plan}).status_code == 400
    acme.refresh_from_db()
    assert acme.plan.code == "free"


def test_downgrade_to_free_from_the_billing_page(alice_client, alice, acme, pro):
    change_plan(actor=alice, workspace=acme, plan=pro)
    response = alice_client.post("/w/acme/billing/plan/", {"plan": "free", "confirm": "yes"})
    assert response["Location"] == "/w/acme/billing/"
    acme.refresh_from_db()
    assert acme.plan.code == "free"
    assert AuditEvent.objects.filter(action="plan.changed").count() == 2


def test_a_downgrade_asks_for_confirmation_and_says_how_far_limits_drop(alice_client, alice, acme, pro):
    change_plan(actor=alice, workspace=acme, plan=pro)
    free = Plan.objects.get(code="free")
    factor = f"{pro.monthly_requests / free.monthly_requests:.3g}× fewer"
    page = alice_client.get("/w/acme/billing/").content.decode()
    assert "data-downgrade" in page and 'name="confirm" value="yes"' in page
    assert f"from {pro.monthly_requests:,} to {free.monthly_requests:,} avatar requests a month ({factor})" in page
    response = alice_client.post("/w/acme/billing/plan/", {"plan": "free"})  # the old one-click form
    assert response.status_code == 400
    assert "Confirm the switch to Free" in response.content.decode()
    acme.refresh_from_db()
    assert acme.plan == pro


def test_stripe_endpoints_are_404_without_keys(alice_client, client):
    assert alice_client.post("/w/acme/billing/checkout/", {"plan": "pro"}).status_code == 404
    assert alice_client.post("/w/acme/billing/portal/").status_code == 404
    assert client.post("/billing/stripe/webhook/", "{}", content_type="application/json").status_code == 404


def test_members_see_plans_without_buttons(bob_client):
    body = bob_client.get("/w/acme/billing/").content.decode()
    assert "Owners and admins change the plan." in body
    assert "Switch to" not in body and "Contact support to upgrade" not in body


# ---------------------------------------------------------------- with Stripe


def test_checkout_sends_the_owner_to_stripe(alice_client, stripe_on, fake_stripe, settings):
    body = alice_client.get("/w/acme/billing/").content.decode()
    assert 'action="/w/acme/billing/checkout/"' in body and "Upgrade to Pro" in body
    response = alice_client.post("/w/acme/billing/checkout/", {"plan": "pro"})
    assert response.status_code == 303
    assert response["Location"] == "https://stripe.test/checkout"
    params = fake_stripe["checkout"]
    assert params["mode"] == "subscription"
    assert params["line_items"] == [{"price": "price_pro", "quantity": 1}]
    assert params["client_reference_id"] == "acme"
    assert params["customer_email"] == "alice@example.com"
    assert params["cancel_url"] == f"{settings.PUBLIC_BASE_URL}/w/acme/billing/"


def test_checkout_refuses_plans_not_sold_online(alice_client, stripe_on, fake_stripe):
    assert alice_client.post("/w/acme/billing/checkout/", {"plan": "free"}).status_code == 400
    assert alice_client.post("/w/acme/billing/checkout/", {"plan": "scale"}).status_code == 400
    assert fake_stripe == {}


def test_subscribed_workspaces_change_plans_in_the_portal(alice_client, acme, stripe_on, fake_stripe):
    Workspace.objects.filter(pk=acme.pk).update(stripe_customer_id="cus_123", stripe_subscription_id="sub_123")
    assert alice_client.post("/w/acme/billing/checkout/", {"plan": "pro"})["Location"] == "https://stripe.test/portal"
    response = alice_client.post("/w/acme/billing/portal/")
    assert response.status_code == 303
    assert fake_stripe["portal"]["customer"] == "cus_123"
    assert alice_client.post("/w/acme/billing/plan/", {"plan": "free"}).status_code == 400  # cancel in Stripe


def test_the_portal_needs_a_customer(alice_client, stripe_on, fake_stripe):
    assert alice_client.post("/w/acme/billing/portal/").status_code == 404


def test_a_paid_checkout_moves_the_workspace_to_the_plan(client, acme, stripe_on, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = _deliver(client, _checkout_completed())
    assert response.status_code == 200
    acme.refresh_from_db()
    assert acme.plan.code == "pro"
    assert (acme.stripe_customer_id, acme.stripe_subscription_id) == ("cus_123", "sub_123")
    assert AuditEvent.objects.get(action="plan.changed").data["source"] == "stripe"


def test_webhooks_are_idempotent(client, acme, stripe_on):
    assert _deliver(client, _checkout_completed()).status_code == 200
    Workspace.objects.filter(pk=acme.pk).update(plan=Plan.objects.get(code="free"))
    assert _deliver(client, _checkout_completed()).status_code == 200  # the same event again
    acme.refresh_from_db()
    assert acme.plan.code == "free"  # not applied twice
    assert StripeEvent.objects.count() == 1


@pytest.mark.parametrize(
    "header",
    [None, "t=1,v1=deadbeef", "garbage"],
)
def test_unsigned_or_forged_webhooks_are_refused(client, acme, stripe_on, header):
    headers = {"Stripe-Signature": header} if header else {}
    response = client.post(
        "/billing/stripe/webhook/", json.dumps(_checkout_completed()), content_type="application/json", headers=headers
    )
    assert response.status_code == 400
    acme.refresh_from_db()
    assert acme.plan.code == "free"
    assert not StripeEvent.objects.exists()


def test_a_webhook_signed_with_another_secret_is_refused(client, acme, stripe_on):
    assert _deliver(client, _checkout_completed(), secret="whsec_other").status_code == 400


def test_webhooks_refuse_get(client, stripe_on):
    assert client.get("/billing/stripe/webhook/").status_code == 405


def test_subscription_updates_follow_the_price_and_deletion_returns_to_free(client, acme, stripe_on):
    _deliver(client, _checkout_completed())
    scale = Plan.objects.get(code="scale")
    scale.stripe_price_id = "price_scale"
    scale.save()
    _deliver(client, _subscription("customer.subscription.updated", price="price_scale", event_id="evt_2"))
    acme.refresh_from_db()
    assert acme.plan.code == "scale"
    _deliver(client, _subscription("customer.subscription.updated", status="unpaid", event_id="evt_3"))
    acme.refresh_from_db()
    assert acme.plan.code == "free"
    _deliver(client, _subscription("customer.subscription.updated", event_id="evt_4"))
    _deliver(client, _subscription("customer.subscription.deleted", status="canceled", event_id="evt_5"))
    acme.refresh_from_db()
    assert acme.plan.code == "free"
    assert acme.stripe_subscription_id == ""
    assert acme.stripe_customer_id == "cus_123"  # kept: invoices stay reachable in the portal


def test_events_for_unknown_workspaces_are_acknowledged(client, stripe_on):
    event = _checkout_completed()
    event["data"]["object"].update(client_reference_id="nobody", metadata={"workspace": "nobody", "plan": "pro"})
    assert _deliver(client, event).status_code == 200
    other = _subscription("customer.subscription.updated", event_id="evt_9")
    assert _deliver(client, other).status_code == 200
