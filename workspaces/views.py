from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts.connections import can_revoke, group_connections, list_connections, revoke_connection
from accounts.models import AuthenticatedHttpRequest
from accounts.views import safe_next
from workspaces import billing, charts, live, services
from workspaces.access import current_membership, get_membership
from workspaces.forms import ApiKeyForm, InviteForm, KeyDomainsForm, PlanForm, RoleForm, WorkspaceNameForm
from workspaces.models import ApiKey, Invitation, Membership, Plan, UsagePeriod


Role = Membership.Role


def _error_messages(exc: ValidationError | PermissionDenied) -> str:
    return " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


@require_safe
@login_required
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The dashboard's front door: the current workspace, or creating a first one."""
    membership = current_membership(request)
    if membership is None:
        return redirect("workspaces:create")
    return redirect("workspaces:overview", slug=membership.workspace.slug)


@require_safe
@login_required
def workspace_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    memberships = Membership.objects.select_related("workspace", "workspace__plan").filter(user=request.user)
    return render(request, "workspaces/list.html", {"memberships": memberships})


@require_http_methods(["GET", "POST"])
@login_required
def create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = WorkspaceNameForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        workspace = services.create_workspace(owner=request.user, name=form.cleaned_data["name"])
        request.session["current_workspace"] = workspace.slug
        messages.success(request, f"Created {workspace.name}.")
        return redirect(safe_next(request, reverse("workspaces:overview", kwargs={"slug": workspace.slug})))
    return render(request, "workspaces/create.html", {"form": form, "next": safe_next(request, "")})


@require_safe
@login_required
def overview(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug)
    workspace = membership.workspace
    return render(
        request,
        "workspaces/overview.html",
        {
            "membership": membership,
            "workspace": workspace,
            "live": live.snapshot(workspace),
            "recent_connections": list_connections(workspace)[:3],
        },
    )


@require_POST
@login_required
def switch(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug)
    messages.info(request, f"Switched to {membership.workspace.name}.")
    return redirect("workspaces:overview", slug=slug)


@require_safe
@login_required
def settings_page(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug)
    form = WorkspaceNameForm(initial={"name": membership.workspace.name})
    return render(request, "workspaces/settings.html", {"membership": membership, "form": form})


@require_POST
@login_required
def rename(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug, min_role=Role.ADMIN)
    form = WorkspaceNameForm(request.POST)
    if not form.is_valid():
        return render(request, "workspaces/settings.html", {"membership": membership, "form": form}, status=400)
    services.rename_workspace(actor=request.user, workspace=membership.workspace, name=form.cleaned_data["name"])
    messages.success(request, "Workspace renamed.")
    return redirect("workspaces:settings", slug=slug)


def _members_context(membership: Membership, invite_form: InviteForm | None = None) -> dict:
    workspace = membership.workspace
    return {
        "membership": membership,
        "members": workspace.memberships.select_related("user").order_by("created_at"),
        "invitations": workspace.invitations.pending().select_related("invited_by"),
        "invite_form": invite_form or InviteForm(),
        "role_choices": Role.choices,
    }


@require_safe
@login_required
def members(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug)
    return render(request, "workspaces/members.html", _members_context(membership))


@require_POST
@login_required
def invite(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug, min_role=Role.ADMIN)
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            services.invite_member(
                actor=request.user,
                workspace=membership.workspace,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
            )
        except (ValidationError, PermissionDenied) as exc:
            form.add_error("email", _error_messages(exc))
    if not form.is_valid():
        return render(request, "workspaces/members.html", _members_context(membership, form), status=400)
    messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
    return redirect("workspaces:members", slug=slug)


@require_POST
@login_required
def revoke_invitation(request: AuthenticatedHttpRequest, slug: str, uid) -> HttpResponse:
    membership = get_membership(request, slug, min_role=Role.ADMIN)
    invitation = get_object_or_404(Invitation, uid=uid, workspace=membership.workspace)
    services.revoke_invitation(actor=request.user, invitation=invitation)
    messages.success(request, f"Invitation for {invitation.email} revoked.")
    return redirect("workspaces:members", slug=slug)


def _member_or_404(membership: Membership, uid) -> Membership:
    return get_object_or_404(Membership.objects.select_related("user"), uid=uid, workspace=membership.workspace)


@require_POST
@login_required
def remove_member(request: AuthenticatedHttpRequest, slug: str, uid) -> HttpResponse:
    membership = get_membership(request, slug, min_role=Role.ADMIN)
    target = _member_or_404(membership, uid)
    try:
        services.remove_member(actor=request.user, membership=target)
    except ValidationError as exc:
        messages.error(request, _error_messages(exc))
    else:
        messages.success(request, f"Removed {target.user}.")
    return redirect("workspaces:members", slug=slug)


@require_POST
@login_required
def change_role(request: AuthenticatedHttpRequest, slug: str, uid) -> HttpResponse:
    membership = get_membership(request, slug, min_role=Role.ADMIN)
    target = _member_or_404(membership, uid)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
        return redirect("workspaces:members", slug=slug)
    try:
        services.change_role(actor=request.user, membership=target, role=form.cleaned_data["role"])
    except ValidationError as exc:
        messages.error(request, _error_messages(exc))
    else:
        messages.success(request, f"{target.user} is now {Role(form.cleaned_data['role']).label.lower()}.")
    return redirect("workspaces:members", slug=slug)


@require_POST
@login_required
def leave(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug)
    try:
        services.leave_workspace(membership=membership)
    except ValidationError as exc:
        messages.error(request, _error_messages(exc))
        return redirect("workspaces:settings", slug=slug)
    request.session.pop("current_workspace", None)
    messages.success(request, f"You left {membership.workspace.name}.")
    return redirect("workspaces:home")


@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """Show an invitation (GET) and accept it (POST). Signing in or up comes back here."""
    found = Invitation.objects.for_token(token)
    if found is None:
        newer = Invitation.objects.superseded_by_token(token)
        if newer is not None:
            return render(request, "workspaces/invitation.html", {"invitation": newer, "superseded": True}, status=410)
        raise Http404("This invitation link is not valid.")
    if not request.user.is_authenticated:
        if request.method == "POST":
            return redirect_to_login(request.get_full_path())
        return render(request, "workspaces/invitation.html", {"invitation": found})
    error = None
    if request.method == "POST":
        try:
            membership = services.accept_invitation(invitation=found, user=request.user)
        except services.InvitationError as exc:
            error = str(exc)
        else:
            request.session["current_workspace"] = membership.workspace.slug
            messages.success(request, f"You joined {membership.workspace.name}.")
            return redirect("workspaces:overview", slug=membership.workspace.slug)
    return render(
        request, "workspaces/invitation.html", {"invitation": found, "error": error}, status=400 if error else 200
    )


# ---------------------------------------------------------------- API keys

# The clear key of the key just created, kept in the session for the one page view that shows it.
NEW_KEY_SESSION = "new_api_key"
EXAMPLE_HANDLE = "eileen-collins"  # the demo profile (`load_demo`), so copied snippets work at once


# What snippets carry when the clear key is not at hand: pasted as is they fail, and plainly say why.
# (A masked key such as pk_live_hLpP…P2N5 looks real and gives a puzzling 401.)
KEY_PLACEHOLDERS = {ApiKey.Kind.PUBLISHABLE: "YOUR_PUBLISHABLE_KEY", ApiKey.Kind.SECRET: "YOUR_SECRET_KEY"}


def _snippets(key: ApiKey | None, raw: str | None = None) -> dict:
    """A ready <img> tag and a curl command with the key: the clear one at the moment it is shown once,
    else a placeholder to replace (`placeholder` names it, so the page says what goes there)."""
    base = settings.PUBLIC_BASE_URL
    kind = key.kind if key is not None else ApiKey.Kind.PUBLISHABLE
    domains = key.allowed_domains if key is not None else []
    placeholder = None if raw else KEY_PLACEHOLDERS[ApiKey.Kind(kind)]
    value = raw or placeholder
    if kind == ApiKey.Kind.SECRET:
        url = f"{base}/v1/avatar?username={EXAMPLE_HANDLE}&size=256"
        curl = f'curl -sL -o avatar.webp -H "x-api-key: {value}" \\\n  "{url}"'
        return {"img": "", "curl": curl, "placeholder": placeholder}
    url = f"{base}/v1/avatar?key={value}&username={EXAMPLE_HANDLE}&size=128"
    curl = f'curl -sL -o avatar.webp "{url}"'
    if domains:
        # Allow-listed keys answer only pages on those sites; curl has to say it comes from one.
        host = domains[0].replace("*.", "www.", 1)
        curl += f' \\\n  -H "Referer: https://{host}/"'
    img = f'<img src="{url}" alt="Eileen Collins" width="128" height="128">'
    return {"img": img, "curl": curl, "placeholder": placeholder}


def _grace_days() -> str:
    days = settings.AVTRZ_CONNECTOR_KEY_GRACE_S / 86400
    return (
        f"{days:g} day{'' if days == 1 else 's'}"
        if days >= 1
        else f"{settings.AVTRZ_CONNECTOR_KEY_GRACE_S // 3600} hours"
    )


def _keys_context(membership: Membership, form: ApiKeyForm | None = None) -> dict:
    workspace = membership.workspace
    active = workspace.api_keys.active().select_related("created_by")
    publishable = [k for k in active if k.kind == ApiKey.Kind.PUBLISHABLE]
    # The example names a key people created (whose full value they saw once), not the AI connector's.
    example = next((k for k in publishable if not k.for_connector), publishable[0] if publishable else None)
    return {
        "membership": membership,
        "api_keys": active,
        "form": form or ApiKeyForm(),
        "snippets": _snippets(example),
        "example_key": example,
        # The one new AI answers use; a rotated one still answering is listed as retiring.
        "connector_key": next((k for k in publishable if k.for_connector and not k.expires_at), None),
        "grace_days": _grace_days(),
    }


@require_safe
@login_required
def api_keys(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug)
    return render(request, "workspaces/keys.html", _keys_context(membership))


@require_POST
@login_required
def create_key(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug, min_role=Role.ADMIN)
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        return render(request, "workspaces/keys.html", _keys_context(membership, form), status=400)
    raw = services.create_api_key(
        actor=request.user,
        workspace=membership.workspace,
        kind=form.cleaned_data["kind"],
        name=form.cleaned_data["name"],
        domains=form.cleaned_data["domains"],
    )
    key = ApiKey.objects.for_key(raw)
    assert key is not None  # created just above
    # Never in a URL (logs, history, Referer): the next page view takes it out of the session.
    request.session[NEW_KEY_SESSION] = {"uid": str(key.uid), "raw": raw}
    return redirect("workspaces:api_key", slug=slug, uid=key.uid)


def _key_or_404(membership: Membership, uid) -> ApiKey:
    return get_object_or_404(ApiKey.objects.select_related("created_by"), uid=uid, workspace=membership.workspace)


def _key_context(membership: Membership, key: ApiKey, raw: str | None = None, form=None) -> dict:
    return {
        "grace_days": _grace_days(),
        "membership": membership,
        "key": key,
        "raw_key": raw,
        "snippets": _snippets(key, raw),
        "domains_form": form or KeyDomainsForm(initial={"domains": "\n".join(key.allowed_domains)}),
    }


@require_safe
@login_required
def api_key(request: AuthenticatedHttpRequest, slug: str, uid) -> HttpResponse:
    membership = get_membership(request, slug)
    key = _key_or_404(membership, uid)
    created = request.session.pop(NEW_KEY_SESSION, None)
    raw = created["raw"] if created and created["uid"] == str(key.uid) and membership.can_manage else None
    response = render(request, "workspaces/key.html", _key_context(membership, key, raw))
    if raw:
        add_never_cache_headers(response)  # the page holds a secret: not for the back button or any cache
    return response


@require_POST
@login_required
def key_domains(request: AuthenticatedHttpRequest, slug: str, uid) -> HttpResponse:
    membership = get_membership(request, slug, min_role=Role.ADMIN)
    key = _key_or_404(membership, uid)
    if not key.is_active or key.kind != ApiKey.Kind.PUBLISHABLE:
        return HttpResponseBadRequest("Only an active publishable key has allowed domains.")
    form = KeyDomainsForm(request.POST)
    if not form.is_valid():
        return render(request, "workspaces/key.html", _key_context(membership, key, form=form), status=400)
    services.set_key_domains(actor=request.user, key=key, domains=form.cleaned_data["domains"])
    messages.success(request, f"Allowed domains of {key.name} saved.")
    return redirect("workspaces:api_key", slug=slug, uid=key.uid)


@require_POST
@login_required
def revoke_key(request: AuthenticatedHttpRequest, slug: str, uid) -> HttpResponse:
    membership = get_membership(request, slug, min_role=Role.ADMIN)
    key = _key_or_404(membership, uid)
    if key.is_active:
        services.revoke_api_key(actor=request.user, key=key)
        messages.success(request, f"Revoked {key.name} ({key.masked}). Requests with it now fail.")
    return redirect("workspaces:api_keys", slug=slug)


@require_POST
@login_required
def rotate_key(request: AuthenticatedHttpRequest, slug: str, uid) -> HttpResponse:
    """Rotate the AI connector key: new AI answers use a new key, the old one answers for the grace period."""
    membership = get_membership(request, slug, min_role=Role.ADMIN)
    key = _key_or_404(membership, uid)
    try:
        new = services.rotate_connector_key(actor=request.user, key=key)
    except services.RotationError as exc:
        messages.error(request, str(exc))
        return redirect("workspaces:api_key", slug=slug, uid=key.uid)
    key.refresh_from_db()
    messages.success(
        request,
        f"Rotated: new AI answers use {new.masked}. {key.masked} keeps answering image URLs already handed out "
        f"until {key.expires_at:%-d %b %Y, %H:%M} UTC.",
    )
    return redirect("workspaces:api_keys", slug=slug)


# ---------------------------------------------------------------- AI connections


def _connections_context(request: AuthenticatedHttpRequest, membership: Membership) -> dict:
    connections = list(list_connections(membership.workspace))
    groups: list[dict[str, Any]] = [
        {
            "rows": [
                {"connection": c, "scopes": c.scope.split(), "can_revoke": can_revoke(actor=request.user, connection=c)}
                for c in group.connections
            ],
        }
        for group in group_connections(connections)
    ]
    for group in groups:
        group["latest"], *group["older"] = group["rows"]
    rows = [row for group in groups for row in group["rows"]]
    return {"membership": membership, "groups": groups, "rows": rows}


@require_safe
@login_required
def connections(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug)
    return render(request, "workspaces/connections.html", _connections_context(request, membership))


@require_POST
@login_required
def revoke_connection_view(request: AuthenticatedHttpRequest, slug: str, uid) -> HttpResponse:
    # Any member may ask: whoever made the connection can revoke it; can_revoke decides.
    membership = get_membership(request, slug)
    connection = get_object_or_404(list_connections(membership.workspace), uid=uid)
    revoke_connection(actor=request.user, connection=connection)
    messages.success(request, f"Revoked {connection.application.name}. Its tokens stopped working.")
    return redirect("workspaces:connections", slug=slug)


# ---------------------------------------------------------------- usage


@require_safe
@login_required
def usage_page(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug)
    workspace = membership.workspace
    return render(
        request,
        "workspaces/usage.html",
        {
            "membership": membership,
            "live": live.snapshot(workspace),
            "chart": charts.daily_chart(workspace),
            "errors": charts.recent_errors(workspace),
            "past_periods": UsagePeriod.objects.filter(workspace=workspace).select_related("plan")[1:7],
        },
    )


@require_safe
@login_required
def usage_json(request: AuthenticatedHttpRequest, slug: str) -> JsonResponse:
    """The live numbers for pages that cannot hold a WebSocket open (polled every 30 s)."""
    membership = get_membership(request, slug)
    response = JsonResponse(live.snapshot(membership.workspace))
    add_never_cache_headers(response)
    return response


# ---------------------------------------------------------------- billing


def _price(plan: Plan) -> str:
    return f"${plan.price_cents / 100:,.0f}" if plan.price_cents % 100 == 0 else f"${plan.price_cents / 100:,.2f}"


def _billing_context(membership: Membership, error: str = "") -> dict:
    workspace = membership.workspace
    plans = [
        {
            "plan": plan,
            "price": _price(plan) if plan.price_cents else "Free",
            "buyable": billing.can_buy(plan),
            "drop": _limits_drop(workspace.plan, plan),
        }
        for plan in Plan.objects.filter(is_public=True)
    ]
    return {
        "membership": membership,
        "workspace": workspace,
        "live": live.snapshot(workspace),
        "chart": charts.daily_chart(workspace),
        "plans": plans,
        "current_price": _price(workspace.plan) if workspace.plan.price_cents else "Free",
        "stripe_enabled": billing.enabled(),
        "support_email": settings.AVTRZ_SUPPORT_EMAIL,
        "error": error,
    }


def _limits_drop(current: Plan, new: Plan) -> str:
    """What a switch from `current` to `new` takes away, as a sentence; empty when no limit drops."""
    drops = []
    for field, unit in (
        ("monthly_requests", "avatar requests a month"),
        ("monthly_new_profiles", "new profiles a month"),
        ("requests_per_second", "requests per second"),
        ("burst", "requests at once"),
    ):
        before, after = getattr(current, field), getattr(new, field)
        if after < before:
            times = f" ({before / after:.3g}× fewer)" if after else ""
            drops.append(f"from {before:,} to {after:,} {unit}{times}")
    if not drops:
        return ""
    listed = drops[0] if len(drops) == 1 else ", ".join(drops[:-1]) + " and " + drops[-1]
    return f"Limits drop at once: {listed}. Requests past the new quota are refused with 402 until the cycle resets."


def _billing_error(request: HttpRequest, membership: Membership, error: str) -> HttpResponse:
    return render(request, "workspaces/billing.html", _billing_context(membership, error=error), status=400)


@require_safe
@login_required
def billing_page(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug)
    if request.GET.get("checkout") == "done":
        messages.info(request, "Thanks! Your plan changes as soon as Stripe confirms the payment.")
    return render(request, "workspaces/billing.html", _billing_context(membership))


@require_POST
@login_required
def change_plan(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    """Switch to a free public plan. Paid plans are bought through Stripe Checkout or support."""
    membership = get_membership(request, slug, min_role=Role.ADMIN)
    workspace = membership.workspace
    form = PlanForm(request.POST)
    if not form.is_valid():
        return _billing_error(request, membership, "Choose one of the plans below.")
    plan = form.cleaned_data["plan"]
    if plan.price_cents:
        return _billing_error(request, membership, f"{plan.name} is a paid plan: subscribe to it below.")
    if workspace.stripe_subscription_id:
        return _billing_error(
            request, membership, "Cancel the paid subscription in the billing portal; the plan follows."
        )
    drop = _limits_drop(workspace.plan, plan)
    if drop and request.POST.get("confirm") != "yes":  # a downgrade is never one click
        return _billing_error(request, membership, f"Confirm the switch to {plan.name}. {drop}")
    services.change_plan(actor=request.user, workspace=workspace, plan=plan)
    messages.success(request, f"{workspace.name} is now on {plan.name}.")
    return redirect("workspaces:billing", slug=slug)


def _billing_url(request: HttpRequest, slug: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}{reverse('workspaces:billing', kwargs={'slug': slug})}"


@require_POST
@login_required
def checkout(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug, min_role=Role.ADMIN)
    workspace = membership.workspace
    if not billing.enabled():
        raise Http404("Online payment is not set up.")
    form = PlanForm(request.POST)
    if not form.is_valid() or not billing.can_buy(form.cleaned_data["plan"]):
        return _billing_error(request, membership, "That plan cannot be bought online.")
    if workspace.stripe_subscription_id:
        # One subscription per workspace: switching between paid plans happens in the portal.
        url = billing.portal_url(workspace=workspace, return_url=_billing_url(request, slug))
    else:
        url = billing.checkout_url(
            workspace=workspace,
            plan=form.cleaned_data["plan"],
            user=request.user,
            return_url=_billing_url(request, slug),
        )
    return HttpResponseRedirect(url, status=303)


@require_POST
@login_required
def billing_portal(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug, min_role=Role.ADMIN)
    if not billing.enabled() or not membership.workspace.stripe_customer_id:
        raise Http404("This workspace has no Stripe subscription.")
    url = billing.portal_url(workspace=membership.workspace, return_url=_billing_url(request, slug))
    return HttpResponseRedirect(url, status=303)


@csrf_exempt  # Stripe cannot send a CSRF token; the signature is what proves the sender
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    if not billing.enabled():
        raise Http404("Stripe is not configured.")
    try:
        billing.handle_webhook(request.body, request.headers.get("Stripe-Signature"))
    except billing.InvalidWebhook:
        return HttpResponseBadRequest("Invalid payload or signature.")
    return HttpResponse("ok", content_type="text/plain")


# ---------------------------------------------------------------- connect an AI assistant


@require_safe
@login_required
def connect(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug)
    return render(request, "workspaces/connect.html", {"membership": membership})
