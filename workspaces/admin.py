from django.contrib import admin

from workspaces.models import AuditEvent, Invitation, Membership, Plan, Workspace


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "code",
        "price_cents",
        "monthly_requests",
        "monthly_new_profiles",
        "requests_per_second",
        "is_public",
    ]
    list_editable = ["is_public"]
    search_fields = ["name", "code"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "plan", "member_count", "created_at"]
    list_filter = ["plan", "created_at"]
    search_fields = ["name", "slug", "memberships__user__email"]
    readonly_fields = ["slug", "created_at"]
    inlines = [MembershipInline]

    @admin.display(description="Members")
    def member_count(self, obj: Workspace) -> int:
        return obj.memberships.count()


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "created_at"]
    search_fields = ["user__email", "workspace__slug", "workspace__name"]
    autocomplete_fields = ["user", "workspace"]
    readonly_fields = ["uid", "created_at"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "workspace", "role", "invited_by", "created_at", "expires_at", "accepted_at"]
    list_filter = ["role", "accepted_at"]
    search_fields = ["email", "workspace__slug"]
    # The token exists only as a digest; nothing here can reveal or forge a link.
    readonly_fields = ["uid", "token_digest", "invited_by", "created_at", "accepted_at"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "action", "summary", "workspace", "actor"]
    list_filter = ["action", "created_at"]
    search_fields = ["summary", "workspace__slug", "actor__email"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
