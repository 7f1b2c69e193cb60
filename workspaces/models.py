from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.text import slugify

from avtrz.lib.validators import no_control_characters


class Plan(models.Model):
    """A price and its limits. Plans are data: staff edit them in the admin, code never names figures."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64, validators=[no_control_characters])
    price_cents = models.PositiveIntegerField(default=0, help_text="Monthly price in US cents.")
    monthly_requests = models.PositiveIntegerField(help_text="avatar_requests allowed per cycle.")
    monthly_new_profiles = models.PositiveIntegerField(help_text="avatar_new_profiles allowed per cycle.")
    requests_per_second = models.PositiveIntegerField(
        validators=[MinValueValidator(1)],
        help_text="Workspace-wide sustained request rate: the token bucket refills at this many per second.",
    )
    burst = models.PositiveIntegerField(
        validators=[MinValueValidator(1)],
        help_text="Requests a workspace may make at once (the token bucket's size), e.g. a page of avatars.",
    )
    is_public = models.BooleanField(default=True, help_text="Offered on the billing page.")
    sort_order = models.PositiveSmallIntegerField(default=0)
    stripe_price_id = models.CharField(
        max_length=100, blank=True, help_text="The Stripe price (price_…) that subscribes to this plan, if sold online."
    )

    class Meta:
        ordering = ["sort_order", "price_cents"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def default(cls) -> Plan:
        return cls.objects.get(code=settings.AVTRZ_DEFAULT_PLAN)


def first_anchor_day() -> int:
    return min(timezone.now().day, 28)


class Workspace(models.Model):
    """The billing and quota unit: keys, usage, connections and limits all key off it."""

    name = models.CharField(max_length=80, validators=[no_control_characters])
    # The slug is the workspace's identity in URLs; it never changes, renaming changes the name.
    slug = models.SlugField(max_length=50, unique=True)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="workspaces")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Cycles start on this day of each month (capped at 28 so every month has it), at 00:00 UTC.
    billing_anchor_day = models.PositiveSmallIntegerField(default=first_anchor_day)
    # Set by Stripe webhooks once the workspace has paid online; the portal needs the customer.
    stripe_customer_id = models.CharField(max_length=100, blank=True)
    stripe_subscription_id = models.CharField(max_length=100, blank=True)

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

    def cycle_bounds(self, at: datetime) -> tuple[datetime, datetime]:
        """The billing cycle containing `at`: from the last anchor day to the next one."""
        start = at.replace(day=self.billing_anchor_day, hour=0, minute=0, second=0, microsecond=0)
        if start > at:
            start = _add_months(start, -1)
        return start, _add_months(start, 1)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    return moment.replace(year=moment.year + index // 12, month=index % 12 + 1)


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

    def superseded_by_token(self, token: str) -> Invitation | None:
        """The invitation whose link `token` was, before a newer email replaced it."""
        old = SupersededInvitationLink.objects.filter(token_digest=_digest(token)).select_related(
            "invitation__workspace", "invitation__invited_by"
        )
        found = old.first()
        return found.invitation if found else None


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
    # The digest of a link replaced by issue_token, until save() records it; not a column.
    _superseded_digest: str | None

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} → {self.workspace}"

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        superseded = getattr(self, "_superseded_digest", None)
        if superseded:
            SupersededInvitationLink.objects.get_or_create(token_digest=superseded, defaults={"invitation": self})
            self._superseded_digest = None

    def issue_token(self) -> str:
        """Set a fresh token (the only time it exists in clear) and the expiry that goes with it.
        A link sent before is remembered (by digest) once saved, so it can say it was replaced."""
        if self.token_digest:
            self._superseded_digest = self.token_digest
        token = secrets.token_urlsafe(32)
        self.token_digest = _digest(token)
        self.expires_at = timezone.now() + self.VALID_FOR
        return token

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.expires_at > timezone.now()


class SupersededInvitationLink(models.Model):
    """The digest of an invitation link replaced by a newer email, so following it can say so
    instead of "not valid". It never admits anyone: only the invitation's current link does."""

    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    invitation = models.ForeignKey(Invitation, on_delete=models.CASCADE, related_name="superseded_links")
    superseded_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return f"replaced link of {self.invitation}"


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
        KEY_CREATED = "key.created", "API key created"
        KEY_REVOKED = "key.revoked", "API key revoked"
        KEY_ROTATED = "key.rotated", "API key rotated"
        KEY_DOMAINS_CHANGED = "key.domains_changed", "API key domains changed"
        CONNECTION_CREATED = "connection.created", "AI connection created"
        CONNECTION_REVOKED = "connection.revoked", "AI connection revoked"
        PLAN_CHANGED = "plan.changed", "Plan changed"

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


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        """Not revoked, and not past the end of a rotation's grace period."""
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=timezone.now())
        )

    def for_key(self, raw: str) -> ApiKey | None:
        """The live key matching `raw`, looked up by digest: the clear key is never stored."""
        # No secret is ever compared here, so there is nothing for a timing attack to measure: the
        # database compares SHA-256 digests in an indexed (unique) column, and how long that takes
        # depends on the digest of the guess, which an attacker cannot steer towards a stored one
        # without inverting SHA-256. hmac.compare_digest would only matter if we compared raw keys.
        if not ApiKey.looks_like_key(raw):
            return None
        return self.active().select_related("workspace", "workspace__plan").filter(digest=key_digest(raw)).first()


def key_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(models.Model):
    """A workspace's API key. Only a SHA-256 digest, a display prefix and the last four are kept."""

    class Kind(models.TextChoices):
        PUBLISHABLE = "publishable", "Publishable"
        SECRET = "secret", "Secret"

    PREFIXES = {Kind.PUBLISHABLE: "pk_live_", Kind.SECRET: "sk_live_"}
    TOKEN_BYTES = 24  # 192 bits of randomness: no brute force, so a fast digest is the right hash

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=80, validators=[no_control_characters])
    kind = models.CharField(max_length=16, choices=Kind.choices)
    prefix = models.CharField(max_length=16, db_index=True, help_text="The first characters, for recognising a key.")
    last4 = models.CharField(max_length=4)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    allowed_domains = models.JSONField(
        default=list, blank=True, help_text="Hosts a publishable key may be used from: example.com or *.example.com."
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # The AI connector's publishable key: its clear value is derived from the server secret and the
    # key's uid, so the MCP tools can hand it out again; the database alone still cannot produce it.
    for_connector = models.BooleanField(default=False)
    # Set when the key was rotated: it keeps answering until then (so URLs already handed out keep
    # working), then stops like a revoked key. New AI answers use the key that replaced it.
    expires_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.masked})"

    @classmethod
    def looks_like_key(cls, raw: str) -> bool:
        return any(raw.startswith(prefix) for prefix in cls.PREFIXES.values()) and 24 <= len(raw) <= 64

    def issue(self, raw: str | None = None) -> str:
        """Generate the key (or take `raw`), keep its digest, and return it: the only moment it exists in clear."""
        raw = raw or self.PREFIXES[self.Kind(self.kind)] + secrets.token_urlsafe(self.TOKEN_BYTES)
        self.digest = key_digest(raw)
        self.prefix = raw[:12]
        self.last4 = raw[-4:]
        return raw

    def issue_derived(self) -> str:
        """Issue a connector key (see `for_connector`) derived from the current derivation secret."""
        return self.issue(self._derive(settings.AVTRZ_KEY_DERIVATION_SECRET))

    def derived_value(self) -> str | None:
        """The clear value of a connector key, from whichever configured derivation secret (current or
        fallback) issued it; None when none of them did any more."""
        for secret in (settings.AVTRZ_KEY_DERIVATION_SECRET, *settings.AVTRZ_KEY_DERIVATION_SECRET_FALLBACKS):
            raw = self._derive(secret)
            if key_digest(raw) == self.digest:
                return raw
        return None

    def _derive(self, secret: str) -> str:
        mac = hmac.new(secret.encode(), self.uid.bytes, hashlib.sha256).digest()
        return self.PREFIXES[self.Kind.PUBLISHABLE] + base64.urlsafe_b64encode(mac[:24]).decode()

    @property
    def masked(self) -> str:
        return f"{self.prefix}…{self.last4}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())

    @property
    def is_retiring(self) -> bool:
        """Rotated, and still answering until `expires_at`."""
        return self.is_active and self.expires_at is not None


class UsagePeriod(models.Model):
    """One billing cycle of a workspace: its meters and the plan limits that applied when it began."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="usage_periods")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    requests_limit = models.PositiveIntegerField()
    new_profiles_limit = models.PositiveIntegerField()
    avatar_requests = models.PositiveIntegerField(default=0)
    avatar_new_profiles = models.PositiveIntegerField(default=0)
    # When the owners were told a meter passed 80% / 100% of its limit: set by a conditional
    # UPDATE, so each warning goes out once per period however many workers notice.
    requests_warned_80_at = models.DateTimeField(null=True, blank=True)
    requests_warned_100_at = models.DateTimeField(null=True, blank=True)
    new_profiles_warned_80_at = models.DateTimeField(null=True, blank=True)
    new_profiles_warned_100_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-starts_at"]
        constraints = [models.UniqueConstraint(fields=["workspace", "starts_at"], name="one_period_per_start")]

    def __str__(self) -> str:
        return f"{self.workspace} {self.starts_at:%Y-%m-%d}"


class WorkspaceProfile(models.Model):
    """The first lookup of a profile by a workspace in a cycle: what `avatar_new_profiles` counts.

    Keyed by the canonical LinkedIn handle, so this app needs nothing from the avatar engine.
    """

    period = models.ForeignKey(UsagePeriod, on_delete=models.CASCADE, related_name="profiles")
    handle = models.CharField(max_length=100)
    first_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["period", "handle"], name="one_lookup_per_period")]

    def __str__(self) -> str:
        return self.handle


class DailyUsage(models.Model):
    """Per-day answers of a workspace, for the dashboard's chart and error counts.

    Written by the usage flusher by adding each process's tallies (F() increments), so nothing
    is lost or counted twice across processes."""

    COUNTERS = ("api_hits", "api_misses", "mcp_hits", "mcp_misses", "refused_401", "refused_402", "refused_429")

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="daily_usage")
    day = models.DateField()
    api_hits = models.PositiveIntegerField(default=0, help_text="/v1/avatar answers with a photo.")
    api_misses = models.PositiveIntegerField(default=0, help_text="/v1/avatar answers with the monogram.")
    mcp_hits = models.PositiveIntegerField(default=0)
    mcp_misses = models.PositiveIntegerField(default=0)
    refused_401 = models.PositiveIntegerField(default=0)
    refused_402 = models.PositiveIntegerField(default=0)
    refused_429 = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["workspace", "day"], name="one_usage_row_per_day")]
        verbose_name_plural = "daily usage"

    def __str__(self) -> str:
        return f"{self.workspace} {self.day}"


class StripeEvent(models.Model):
    """A Stripe webhook event already handled: Stripe delivers at least once, we act exactly once."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    processed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-processed_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
