from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.text import slugify


class Plan(models.Model):
    """A price and its limits. Plans are data: staff edit them in the admin, code never names figures."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    price_cents = models.PositiveIntegerField(default=0, help_text="Monthly price in US cents.")
    monthly_requests = models.PositiveIntegerField(help_text="avatar_requests allowed per cycle.")
    monthly_new_profiles = models.PositiveIntegerField(help_text="avatar_new_profiles allowed per cycle.")
    requests_per_second = models.PositiveIntegerField(help_text="Workspace-wide request rate limit.")
    is_public = models.BooleanField(default=True, help_text="Offered on the billing page.")
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "price_cents"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def default(cls) -> Plan:
        return cls.objects.get(code=settings.AVTRZ_DEFAULT_PLAN)


class WorkspaceQuerySet(models.QuerySet["Workspace"]):
    def for_user(self, user) -> WorkspaceQuerySet:
        return self.filter(memberships__user=user)


class Workspace(models.Model):
    """The billing and quota unit: keys, usage, connections and limits all key off it."""

    name = models.CharField(max_length=80)
    # The slug is the workspace's identity in URLs; it never changes, renaming changes the name.
    slug = models.SlugField(max_length=50, unique=True)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="workspaces")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = WorkspaceQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def unique_slug_for(cls, name: str) -> str:
        base = slugify(name)[:40] or "workspace"
        slug = base
        while cls.objects.filter(slug=slug).exists():
            slug = f"{base}-{secrets.token_hex(2)}"
        return slug

    def owners(self) -> models.QuerySet[Membership]:
        return self.memberships.filter(role=Membership.Role.OWNER)


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    # Higher rank can do everything a lower rank can.
    RANK = {Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["workspace__name", "created_at"]
        constraints = [models.UniqueConstraint(fields=["user", "workspace"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"

    def has_role(self, minimum: str) -> bool:
        return self.RANK[self.Role(self.role)] >= self.RANK[self.Role(minimum)]

    @property
    def can_manage(self) -> bool:
        """Owners and admins manage keys, members, plan and connections; members read."""
        return self.has_role(self.Role.ADMIN)

    def is_last_owner(self) -> bool:
        return self.role == self.Role.OWNER and self.workspace.owners().count() == 1


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class InvitationQuerySet(models.QuerySet["Invitation"]):
    def pending(self) -> InvitationQuerySet:
        return self.filter(accepted_at__isnull=True, expires_at__gt=timezone.now())

    def for_token(self, token: str) -> Invitation | None:
        return self.select_related("workspace", "invited_by").filter(token_digest=_digest(token)).first()


class Invitation(models.Model):
    """An email invitation to join a workspace. The link's token is stored only as a digest."""

    VALID_FOR = timedelta(days=7)

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} → {self.workspace}"

    def issue_token(self) -> str:
        """Set a fresh token (the only time it exists in clear) and the expiry that goes with it."""
        token = secrets.token_urlsafe(32)
        self.token_digest = _digest(token)
        self.expires_at = timezone.now() + self.VALID_FOR
        return token

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.expires_at > timezone.now()


class AuditEvent(models.Model):
    """Security-relevant actions, written by the service functions, read-only for staff."""

    class Action(models.TextChoices):
        WORKSPACE_CREATED = "workspace.created", "Workspace created"
        WORKSPACE_RENAMED = "workspace.renamed", "Workspace renamed"
        MEMBER_INVITED = "member.invited", "Member invited"
        INVITATION_REVOKED = "invitation.revoked", "Invitation revoked"
        MEMBER_JOINED = "member.joined", "Member joined"
        MEMBER_REMOVED = "member.removed", "Member removed"
        MEMBER_LEFT = "member.left", "Member left"
        MEMBER_ROLE_CHANGED = "member.role_changed", "Member role changed"

    workspace = models.ForeignKey(Workspace, on_delete=models.SET_NULL, null=True, related_name="audit_events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    action = models.CharField(max_length=40, choices=Action.choices)
    summary = models.CharField(max_length=255)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.summary
