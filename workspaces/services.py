"""Multi-model writes for workspaces and members: one transaction each, audit row included,
side effects (emails) dispatched only once the transaction commits.

`actor`, here and in every other service that takes one (`accounts.connections`, `avtrz.avatars.crops`,
`avtrz.avatars.removal`), is keyword-only and means one thing: the `accounts.User` who acted, or None when
Avtrz itself acts (a task, a management command, the billing webhook). The audit row stores it as given and
its summary names it, "Avtrz" for None. The workspace comes with the object acted on, or is passed
explicitly. A service with a rule about who may act checks it itself, so it holds for every caller: the
member services look up the actor's own membership (`_manager`: owners and admins only, and only owners
touch owners), and take a User, never None (Avtrz is nobody's member). Views still reach the workspace
through `get_membership` for their 404 and 403 pages, and pass `request.user`.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.connections import revoke_member_connections
from accounts.models import User
from avtrz.lib import hotcache
from avtrz.lib.validators import no_control_characters, one_line
from workspaces import keys, quota_warnings, usage
from workspaces.emails import send_email
from workspaces.models import ApiKey, AuditEvent, Invitation, Membership, Plan, UsagePeriod, Workspace


Role = Membership.Role


def _audit(workspace: Workspace | None, action: str, summary: str, *, actor: User | None, **data) -> None:
    AuditEvent.objects.create(workspace=workspace, actor=actor, action=action, summary=summary, data=data)


def _name(actor: User | None) -> str:
    """The actor as an audit summary names it."""
    return "Avtrz" if actor is None else str(actor)


def _manager(actor: User, workspace: Workspace) -> Membership:
    """The actor's own membership of `workspace`, which must be an owner's or an admin's to manage members."""
    membership = Membership.objects.filter(user=actor, workspace=workspace).first()
    if membership is None or not membership.can_manage:
        raise PermissionDenied("Only owners and admins can manage members.")
    return membership


@transaction.atomic
def create_workspace(*, owner: User, name: str) -> Workspace:
    no_control_characters(name)
    workspace = Workspace.objects.create(name=name.strip(), slug=Workspace.unique_slug_for(name), plan=Plan.default())
    Membership.objects.create(user=owner, workspace=workspace, role=Role.OWNER)
    _audit(workspace, AuditEvent.Action.WORKSPACE_CREATED, f"{owner} created {workspace.name}", actor=owner)
    return workspace


@transaction.atomic
def rename_workspace(*, actor: User | None, workspace: Workspace, name: str) -> None:
    no_control_characters(name)
    old = workspace.name
    workspace.name = name.strip()
    workspace.save(update_fields=["name"])
    _audit(
        workspace, AuditEvent.Action.WORKSPACE_RENAMED, f"{_name(actor)} renamed {old} to {workspace.name}", actor=actor
    )


@transaction.atomic
def invite_member(*, actor: User, workspace: Workspace, email: str, role: str) -> Invitation:
    """Invite an address (or re-send a pending invitation with a fresh link) and email the link."""
    inviter = _manager(actor, workspace)
    email = email.strip().lower()
    if role == Role.OWNER and inviter.role != Role.OWNER:
        raise PermissionDenied("Only owners can invite owners.")
    if workspace.memberships.filter(user__email__iexact=email).exists():
        raise ValidationError(f"{email} is already a member of {workspace.name}.")
    invitation = workspace.invitations.pending().filter(email__iexact=email).first() or Invitation(
        workspace=workspace, email=email
    )
    invitation.role = role
    invitation.invited_by = actor
    token = invitation.issue_token()
    invitation.save()
    _audit(workspace, AuditEvent.Action.MEMBER_INVITED, f"{actor} invited {email} as {role}", actor=actor)
    context = {
        "workspace": workspace,
        "inviter": actor,
        "role": Role(role).label,
        "accept_url": f"{settings.PUBLIC_BASE_URL}/invitations/{token}/",
        "expires_at": invitation.expires_at,
    }
    # one_line: a name stored before control characters were refused must not break the header.
    subject = one_line(f"{actor.get_full_name()} invited you to {workspace.name} on Avtrz")
    body = render_to_string("emails/invitation.txt", context)
    transaction.on_commit(lambda: send_email.delay(email, subject, body))
    return invitation


@transaction.atomic
def revoke_invitation(*, actor: User, invitation: Invitation) -> None:
    _manager(actor, invitation.workspace)
    invitation.delete()
    _audit(
        invitation.workspace,
        AuditEvent.Action.INVITATION_REVOKED,
        f"{actor} revoked the invitation for {invitation.email}",
        actor=actor,
    )


class InvitationError(Exception):
    """The invitation cannot be accepted by this user; the message says why."""


@transaction.atomic
def accept_invitation(*, invitation: Invitation, user) -> Membership:
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if not invitation.is_pending:
        raise InvitationError("This invitation has expired or was already used. Ask for a new one.")
    if invitation.email.lower() != user.email.lower():
        raise InvitationError(
            f"This invitation was sent to {invitation.email}. Sign in with that address to accept it."
        )
    membership, created = Membership.objects.get_or_create(
        user=user, workspace=invitation.workspace, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    if created:
        _audit(invitation.workspace, AuditEvent.Action.MEMBER_JOINED, f"{user} joined as {membership.role}", actor=user)
    return membership


def _ensure_owner_remains(membership: Membership) -> None:
    if membership.is_last_owner():
        raise ValidationError("A workspace needs at least one owner. Make someone else an owner first.")


def _end_membership(membership: Membership) -> dict:
    """Delete the membership and revoke the AI connections its user made to the workspace: their
    refresh tokens would otherwise keep working. Returns the audit data saying what went."""
    revoked = revoke_member_connections(user_id=membership.user_id, workspace_id=membership.workspace_id)
    membership.delete()
    return {"user": membership.user.email, "connections_revoked": [str(c.uid) for c in revoked]}


def _and_connections(data: dict) -> str:
    count = len(data["connections_revoked"])
    return f", revoking {count} AI connection{'' if count == 1 else 's'}" if count else ""


@transaction.atomic
def remove_member(*, actor: User, membership: Membership) -> None:
    manager = _manager(actor, membership.workspace)
    if membership.role == Role.OWNER and manager.role != Role.OWNER:
        raise PermissionDenied("Only owners can remove an owner.")
    _ensure_owner_remains(membership)
    data = _end_membership(membership)
    _audit(
        membership.workspace,
        AuditEvent.Action.MEMBER_REMOVED,
        f"{actor} removed {membership.user}{_and_connections(data)}",
        actor=actor,
        **data,
    )


@transaction.atomic
def leave_workspace(*, membership: Membership) -> None:
    _ensure_owner_remains(membership)
    data = _end_membership(membership)
    _audit(
        membership.workspace,
        AuditEvent.Action.MEMBER_LEFT,
        f"{membership.user} left{_and_connections(data)}",
        actor=membership.user,
        **data,
    )


@transaction.atomic
def change_role(*, actor: User, membership: Membership, role: str) -> None:
    manager = _manager(actor, membership.workspace)
    if Role.OWNER in (role, membership.role) and manager.role != Role.OWNER:
        raise PermissionDenied("Only owners can grant or take away the owner role.")
    if role != Role.OWNER:
        _ensure_owner_remains(membership)
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    _audit(
        membership.workspace,
        AuditEvent.Action.MEMBER_ROLE_CHANGED,
        f"{actor} changed {membership.user} from {old} to {role}",
        actor=actor,
    )


DOMAIN_PATTERN = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def clean_domains(raw: list[str] | str) -> list[str]:
    """Allowed domains as typed by a person: one per line or comma, `example.com` or `*.example.com`."""
    items = raw.replace(",", "\n").splitlines() if isinstance(raw, str) else raw
    domains: list[str] = []
    for item in (i.strip().lower().rstrip(".") for i in items):
        if not item:
            continue
        if "://" in item or "/" in item or ":" in item:
            raise ValidationError(f"{item!r}: give a host name only, like example.com (no scheme, port or path).")
        if not DOMAIN_PATTERN.match(item) or item.startswith("*.") and "." not in item[2:]:
            raise ValidationError(f"{item!r} is not a host name; use example.com or *.example.com.")
        if item not in domains:
            domains.append(item)
    return domains


@transaction.atomic
def create_api_key(
    *, actor: User | None, workspace: Workspace, kind: str, name: str, domains: list[str] | None = None
) -> str:
    """Create a key and return it in clear: the only time it is ever available."""
    no_control_characters(name)
    key = ApiKey(workspace=workspace, kind=kind, name=name.strip() or ApiKey.Kind(kind).label, created_by=actor)
    if kind == ApiKey.Kind.PUBLISHABLE:
        key.allowed_domains = clean_domains(domains or [])
    raw = key.issue()
    key.save()
    _audit(workspace, AuditEvent.Action.KEY_CREATED, f"{_name(actor)} created {kind} key {key.masked}", actor=actor)
    return raw


@transaction.atomic
def connector_publishable_key(workspace: Workspace) -> str:
    """The publishable key AI connectors use to build durable image URLs, created on first use.

    It has no domain allow-list: the URLs it is for end up in CRMs, documents and emails, which send no
    Origin or Referer. Revoking it in the dashboard makes the next call create a fresh one; rotating it
    leaves the old one answering for a grace period, and this returns the new one."""
    Workspace.objects.select_for_update().get(pk=workspace.pk)  # one creator at a time
    key = workspace.api_keys.active().filter(for_connector=True, expires_at__isnull=True).first()
    if key is not None and (raw := key.derived_value()) is not None:
        return raw
    if key is not None:
        # Issued under a derivation secret no longer configured: its clear value cannot be had again.
        # Replace it; it answers the URLs already handed out for the grace period, like a rotated key.
        ends = _retire_connector_key(key)
        _audit(
            workspace,
            AuditEvent.Action.KEY_ROTATED,
            f"Avtrz replaced the AI connector key {key.masked}: the secret it was derived from is no longer "
            f"configured; it answers until {ends:%Y-%m-%d %H:%M} UTC",
            actor=None,
            old=key.masked,
            old_expires_at=ends.isoformat(),
        )
    key = ApiKey(workspace=workspace, kind=ApiKey.Kind.PUBLISHABLE, name="AI connector", for_connector=True)
    raw = key.issue_derived()
    key.save()
    _audit(workspace, AuditEvent.Action.KEY_CREATED, f"Avtrz created the AI connector key {key.masked}", actor=None)
    return raw


def _retire_connector_key(key: ApiKey) -> datetime:
    """Give the key its grace period's end, and return it; every worker's cached context of it (with no end) goes."""
    key.expires_at = ends = timezone.now() + timedelta(seconds=settings.AVTRZ_CONNECTOR_KEY_GRACE_S)
    key.save(update_fields=["expires_at"])
    transaction.on_commit(lambda: keys.forget_key(key))
    return ends


@transaction.atomic
def revoke_api_key(*, actor: User | None, key: ApiKey) -> None:
    """Revoke at once: the cached context is dropped as soon as the revocation is committed."""
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    _audit(key.workspace, AuditEvent.Action.KEY_REVOKED, f"{_name(actor)} revoked key {key.masked}", actor=actor)
    transaction.on_commit(lambda: keys.forget_key(key))


class RotationError(Exception):
    """The key cannot be rotated; the message says why."""


@transaction.atomic
def rotate_connector_key(*, actor: User | None, key: ApiKey) -> ApiKey:
    """Replace the AI connector key: new AI answers carry a new key at once, while the old one keeps
    answering `/v1/avatar` for AVTRZ_CONNECTOR_KEY_GRACE_S, so the image URLs assistants already handed
    out keep working until they are replaced. Then it stops on every worker: each cached key context
    carries the end, and `retire_rotated_keys` (beat, every 5 minutes; not a task with a week-long ETA,
    which a Redis broker would redeliver) marks it revoked and broadcasts that. Returns the new key."""
    workspace = Workspace.objects.select_for_update().get(pk=key.workspace_id)  # one rotation at a time
    key = ApiKey.objects.get(pk=key.pk)
    if not key.for_connector or not key.is_active:
        raise RotationError("Only the active AI connector key can be rotated.")
    if key.expires_at is not None:
        raise RotationError(
            f"{key.masked} was already rotated; it stops answering on {key.expires_at:%-d %b %Y, %H:%M} UTC."
        )
    ends = _retire_connector_key(key)
    new = ApiKey(
        workspace=workspace, kind=ApiKey.Kind.PUBLISHABLE, name="AI connector", for_connector=True, created_by=actor
    )
    new.issue_derived()
    new.save()
    _audit(
        workspace,
        AuditEvent.Action.KEY_ROTATED,
        f"{_name(actor)} rotated the AI connector key {key.masked} to {new.masked}; the old one answers until "
        f"{ends:%Y-%m-%d %H:%M} UTC",
        actor=actor,
        old=key.masked,
        new=new.masked,
        old_expires_at=ends.isoformat(),
    )

    # The MCP tools' cached clear key goes too, from every worker's memory: the next tool call hands out the new key.
    transaction.on_commit(lambda: hotcache.delete(keys.connector_cache_key(workspace.pk)))
    return new


def retire_rotated_keys(now: datetime | None = None) -> int:
    """Mark rotated keys past their grace period revoked and drop them from every worker's cache (the
    invalidation revocation uses). The request path refuses them at the end anyway: each cached
    context carries it. Returns how many were retired."""
    now = now or timezone.now()
    retired = 0
    for key in ApiKey.objects.filter(revoked_at__isnull=True, expires_at__lte=now).select_related("workspace"):
        with transaction.atomic():
            if not ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=key.expires_at):
                continue  # another worker did it
            _audit(
                key.workspace,
                AuditEvent.Action.KEY_REVOKED,
                f"Avtrz retired the rotated key {key.masked} at the end of its grace period",
                actor=None,
            )
            transaction.on_commit(partial(keys.forget_key, key))
        retired += 1
    return retired


@transaction.atomic
def set_key_domains(*, actor: User | None, key: ApiKey, domains: list[str]) -> None:
    key.allowed_domains = clean_domains(domains)
    key.save(update_fields=["allowed_domains"])
    _audit(
        key.workspace,
        AuditEvent.Action.KEY_DOMAINS_CHANGED,
        f"{_name(actor)} set the domains of {key.masked} to {', '.join(key.allowed_domains) or 'any'}",
        actor=actor,
    )
    transaction.on_commit(lambda: keys.forget_key(key))


@transaction.atomic
def change_plan(*, actor: User | None, workspace: Workspace, plan: Plan, source: str = "dashboard") -> None:
    """Move the workspace to `plan` now. The current cycle takes the new limits at once (an upgrade
    lifts a spent quota immediately), and cached key contexts are dropped so no request uses the old ones.

    `workspace` itself is updated too: the admin saves its instance after calling this."""
    old = Workspace.objects.select_for_update().select_related("plan").get(pk=workspace.pk).plan
    if old == plan:
        return
    workspace.plan = plan
    workspace.save(update_fields=["plan"])
    period = usage.current_period(workspace)
    # New limits, new thresholds: 80% of a bigger quota deserves its own warning.
    UsagePeriod.objects.filter(pk=period.pk).update(
        plan=plan,
        requests_limit=plan.monthly_requests,
        new_profiles_limit=plan.monthly_new_profiles,
        requests_warned_80_at=None,
        requests_warned_100_at=None,
        new_profiles_warned_80_at=None,
        new_profiles_warned_100_at=None,
    )
    _audit(
        workspace,
        AuditEvent.Action.PLAN_CHANGED,
        f"{_name(actor)} changed the plan of {workspace.name} from {old.name} to {plan.name}",
        actor=actor,
        old=old.code,
        new=plan.code,
        source=source,
    )
    transaction.on_commit(lambda: keys.forget_workspace_keys(workspace))


def roll_usage_periods(now: datetime | None = None) -> int:
    """Open each workspace's current cycle and write the final request count of the one before it.

    Idempotent and safe with several workers: periods are created by get_or_create on a unique
    (workspace, starts_at), and each count is added once (`usage.store_period`).
    Returns how many periods were opened."""
    now = now or timezone.now()
    usage.flush_now(force=True)  # what this process counted is in the database before we read it
    opened = 0
    for workspace in Workspace.objects.select_related("plan").iterator():
        starts_at, _ends_at = workspace.cycle_bounds(now)
        existed = UsagePeriod.objects.filter(workspace=workspace, starts_at=starts_at).exists()
        period = usage.current_period(workspace, now)
        opened += not existed
        previous = (
            UsagePeriod.objects.select_related("workspace__plan")
            .filter(workspace=workspace, starts_at__lt=period.starts_at)
            .first()
        )
        if previous is not None:
            usage.store_period(previous.pk)  # what other processes drained into Redis for it
        quota_warnings.warn_quota_thresholds(period, requests_used=usage.requests_used(period.pk))
    return opened
