from typing import TYPE_CHECKING, TypedDict

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import ngettext

from accounts.models import AuthenticatedHttpRequest, User
from avtrz.lib.adminkit import ReadOnlyAdmin, ReadOnlyInline, may_act_on
from workspaces import services
from workspaces.models import (
    ApiKey,
    ApiKeyQuerySet,
    AuditEvent,
    DailyUsage,
    Invitation,
    Membership,
    Plan,
    StripeEvent,
    UsagePeriod,
    Workspace,
)


if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class _Totals(TypedDict):
    """What WorkspaceAdmin.get_queryset annotates each workspace with."""

    member_total: int
    key_total: int


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "code",
        "price_cents",
        "monthly_requests",
        "monthly_new_profiles",
        "requests_per_second",
        "burst",
        "is_public",
    ]
    list_editable = ["is_public"]
    search_fields = ["name", "code"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at"]


class ApiKeyInline(ReadOnlyInline):
    """The workspace's keys at a glance; each links to its own page, where it can be revoked."""

    model = ApiKey
    show_change_link = True
    fields = readonly_fields = ("name", "kind", "masked", "allowed_domains", "created_at", "last_used_at", "revoked_at")


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "plan", "member_count", "active_keys", "created_at"]
    list_filter = ["plan", "created_at"]
    search_fields = ["name", "slug", "memberships__user__email"]
    # The slug is the workspace's identity in URLs; moving the anchor day mid-cycle would make periods
    # overlap; the Stripe ids are written by Stripe's webhooks.
    readonly_fields = [
        "slug",
        "created_at",
        "billing_anchor_day",
        "stripe_customer_id",
        "stripe_subscription_id",
    ]
    list_select_related = ["plan"]
    inlines = [MembershipInline, ApiKeyInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A workspace starts with its owner and an audit row: users create them in the dashboard.
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workspace]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                member_total=Count("memberships", distinct=True),
                key_total=Count("api_keys", filter=Q(api_keys__revoked_at__isnull=True), distinct=True),
            )
        )

    @admin.display(description="Members", ordering="member_total")
    def member_count(self, obj: "WithAnnotations[Workspace, _Totals]") -> int:
        return obj.member_total

    @admin.display(description="Active keys", ordering="key_total")
    def active_keys(self, obj: "WithAnnotations[Workspace, _Totals]") -> int:
        return obj.key_total

    def save_model(self, request: HttpRequest, obj: Workspace, form, change: bool) -> None:
        if change and "plan" in form.changed_data:
            # Through the service: the change is audited, the current cycle takes the new limits and
            # cached key contexts are dropped, as when an owner changes plan in the dashboard.
            assert isinstance(request.user, User)  # the admin lets only signed-in staff this far
            services.change_plan(actor=request.user, workspace=obj, plan=obj.plan, source="admin")
        super().save_model(request, obj, form, change)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "created_at"]
    search_fields = ["user__email", "workspace__slug", "workspace__name"]
    autocomplete_fields = ["user", "workspace"]
    readonly_fields = ["uid", "created_at"]
    list_select_related = ["user", "workspace"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Read-only, deletable to withdraw one.

    Invitations are made in the dashboard, which emails the link: one added here would have no
    link, and changing the address would hand the invitation to someone else.
    """

    list_display = ["email", "workspace", "role", "invited_by", "created_at", "expires_at", "accepted_at"]
    list_filter = ["role", "accepted_at", "expires_at"]
    search_fields = ["email", "workspace__slug", "workspace__name", "invited_by__email"]
    list_select_related = ["workspace", "invited_by"]
    # The token exists only as a digest; nothing here can reveal or forge a link.
    readonly_fields = ["uid", "token_digest"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    """Keys exist in clear only at creation; here they are their prefix and last four characters."""

    list_display = ["name", "masked", "kind", "workspace", "domains", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["kind", "for_connector", "revoked_at", "created_at", "last_used_at"]
    # Prefix, not the full key: a pasted key would land in the URL (?q=) and the server logs.
    search_fields = ["prefix", "name", "workspace__slug", "workspace__name", "created_by__email"]
    search_help_text = "Key prefix (pk_live_… or sk_live_…, first 12 characters), key name, workspace slug or email."
    list_select_related = ["workspace"]
    fields = [
        "name",
        "kind",
        "masked",
        "workspace",
        "allowed_domains",
        "for_connector",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
        "digest",
    ]
    readonly_fields = ["masked"]
    actions = ["revoke"]

    @admin.display(description="Key", ordering="prefix")
    def masked(self, obj: ApiKey) -> str:
        return obj.masked

    @admin.display(description="Allowed domains")
    def domains(self, obj: ApiKey) -> str:
        if obj.kind == ApiKey.Kind.SECRET:
            return "—"
        return ", ".join(obj.allowed_domains) or "any"

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[ApiKey], search_term: str):
        # The dashboard shows keys as "pk_live_abcd…wxyz": find that form as well.
        prefix, ellipsis, last4 = search_term.strip().partition("…")
        if ellipsis and prefix and last4:
            return queryset.filter(prefix__startswith=prefix[:12], last4=last4), False
        return super().get_search_results(request, queryset, search_term)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return may_act_on(request, ApiKey)

    @admin.action(description="Revoke selected keys (they stop working at once)", permissions=["revoke"])
    def revoke(self, request: AuthenticatedHttpRequest, queryset: ApiKeyQuerySet) -> None:
        revoked = 0
        for key in queryset.active().select_related("workspace"):
            services.revoke_api_key(actor=request.user, key=key)
            revoked += 1
        self.message_user(
            request,
            ngettext("Revoked %d key.", "Revoked %d keys.", revoked) % revoked,
            messages.SUCCESS if revoked else messages.WARNING,
        )


@admin.register(UsagePeriod)
class UsagePeriodAdmin(ReadOnlyAdmin):
    list_display = ["workspace", "starts_at", "ends_at", "plan", "requests", "new_profiles"]
    list_filter = ["plan", "starts_at"]
    search_fields = ["workspace__slug", "workspace__name"]
    list_select_related = ["workspace", "plan"]
    date_hierarchy = "starts_at"

    @admin.display(description="Requests (used / limit)", ordering="avatar_requests")
    def requests(self, obj: UsagePeriod) -> str:
        return f"{obj.avatar_requests:,} / {obj.requests_limit:,}"

    @admin.display(description="New profiles (used / limit)", ordering="avatar_new_profiles")
    def new_profiles(self, obj: UsagePeriod) -> str:
        return f"{obj.avatar_new_profiles:,} / {obj.new_profiles_limit:,}"


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdmin):
    list_display = ["workspace", "day", *DailyUsage.COUNTERS]
    list_filter = ["day"]
    search_fields = ["workspace__slug", "workspace__name"]
    list_select_related = ["workspace"]
    date_hierarchy = "day"


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "action", "summary", "workspace", "actor"]
    list_filter = ["action", "created_at"]
    search_fields = ["summary", "workspace__slug", "actor__email"]
    list_select_related = ["workspace", "actor"]
    date_hierarchy = "created_at"


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ["processed_at", "type", "event_id"]
    list_filter = ["type", "processed_at"]
    search_fields = ["event_id", "type"]
    date_hierarchy = "processed_at"
