"""Paid plans through Stripe: Checkout to subscribe, the customer portal to manage or cancel, and
webhooks (verified by signature, handled once per event) that move the workspace between plans.

Stripe is optional: without STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET the billing page offers a
"contact support" link instead, and staff change plans in the admin.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction

from workspaces import services
from workspaces.models import Plan, StripeEvent, Workspace


if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams


log = logging.getLogger(__name__)

# Subscription states in which the customer keeps the paid plan (past_due: Stripe is still retrying).
PAID_STATUSES = {"active", "trialing", "past_due"}


def enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY and settings.STRIPE_WEBHOOK_SECRET)


def client() -> stripe.StripeClient:
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY)


def can_buy(plan: Plan) -> bool:
    return enabled() and plan.is_public and plan.price_cents > 0 and bool(plan.stripe_price_id)


def checkout_url(*, workspace: Workspace, plan: Plan, user, return_url: str) -> str:
    """A Stripe Checkout page subscribing the workspace to `plan`; the webhook applies it once paid."""
    params: SessionCreateParams = {
        "mode": "subscription",
        "line_items": [{"price": plan.stripe_price_id, "quantity": 1}],
        "client_reference_id": workspace.slug,
        "metadata": {"workspace": workspace.slug, "plan": plan.code},
        "subscription_data": {"metadata": {"workspace": workspace.slug, "plan": plan.code}},
        "success_url": f"{return_url}?checkout=done",
        "cancel_url": return_url,
    }
    if workspace.stripe_customer_id:
        params["customer"] = workspace.stripe_customer_id
    else:
        params["customer_email"] = user.email
    url = client().v1.checkout.sessions.create(params=params).url
    assert url is not None  # Stripe sends it for every open hosted session, as a new one is
    return url


def portal_url(*, workspace: Workspace, return_url: str) -> str:
    session = client().v1.billing_portal.sessions.create(
        params={"customer": workspace.stripe_customer_id, "return_url": return_url}
    )
    return session.url


class InvalidWebhook(Exception):
    """The payload is not JSON or its signature does not verify."""


def handle_webhook(payload: bytes, signature: str | None) -> bool:
    """Verify and apply one webhook delivery. False when the event was already handled.

    The event id is recorded in the same transaction as its effect: a failure rolls both back and
    Stripe's retry tries again; a second delivery of a handled event finds the id and does nothing."""
    try:
        event = stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET)
    except (ValueError, stripe.SignatureVerificationError) as exc:
        raise InvalidWebhook(str(exc)) from exc
    try:
        with transaction.atomic():
            StripeEvent.objects.create(event_id=event.id, type=event.type)
            _apply(event.type, event.data.object.to_dict())
    except IntegrityError:
        if StripeEvent.objects.filter(event_id=event.id).exists():
            return False
        raise
    return True


def _apply(kind: str, obj: dict) -> None:
    if kind == "checkout.session.completed" and obj.get("mode") == "subscription":
        workspace = _workspace(obj.get("client_reference_id") or (obj.get("metadata") or {}).get("workspace"))
        if workspace is None:
            return
        workspace.stripe_customer_id = obj.get("customer") or ""
        workspace.stripe_subscription_id = obj.get("subscription") or ""
        workspace.save(update_fields=["stripe_customer_id", "stripe_subscription_id"])
        plan = Plan.objects.filter(code=(obj.get("metadata") or {}).get("plan")).first()
        if plan is not None:
            services.change_plan(actor=None, workspace=workspace, plan=plan, source="stripe")
    elif kind in ("customer.subscription.updated", "customer.subscription.deleted"):
        workspace = Workspace.objects.filter(stripe_subscription_id=obj.get("id")).select_related("plan").first()
        if workspace is None:
            return
        if kind == "customer.subscription.deleted" or obj.get("status") not in PAID_STATUSES:
            plan = Plan.default()
        else:
            plan = _plan_for_price(obj) or workspace.plan  # a price we do not sell: leave the plan alone
        services.change_plan(actor=None, workspace=workspace, plan=plan, source="stripe")
        if kind == "customer.subscription.deleted":
            Workspace.objects.filter(pk=workspace.pk).update(stripe_subscription_id="")


def _workspace(slug: str | None) -> Workspace | None:
    workspace = Workspace.objects.filter(slug=slug).select_related("plan").first() if slug else None
    if workspace is None:
        log.warning("Stripe event for unknown workspace %r", slug)
    return workspace


def _plan_for_price(subscription: dict) -> Plan | None:
    items = (subscription.get("items") or {}).get("data") or []
    price_ids = [(item.get("price") or {}).get("id") for item in items]
    return Plan.objects.filter(stripe_price_id__in=[p for p in price_ids if p]).first()
