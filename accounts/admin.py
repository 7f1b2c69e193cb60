from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import ngettext

# DOT registers its own admins on import; import it first so they can be replaced below.
from oauth2_provider import admin as dot_admin
from oauth2_provider.models import (
    get_access_token_model,
    get_application_model,
    get_grant_model,
    get_id_token_model,
    get_refresh_token_model,
)

from accounts.connections import revoke_connection
from accounts.models import AuthenticatedHttpRequest, Connection, ConnectionQuerySet, User
from avtrz.lib.adminkit import ReadOnlyAdmin, may_act_on
from workspaces.models import Membership


AccessToken = get_access_token_model()
Application = get_application_model()
Grant = get_grant_model()
IDToken = get_id_token_model()
RefreshToken = get_refresh_token_model()


class UserMembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "user"
    extra = 0
    autocomplete_fields = ["workspace"]
    readonly_fields = ["created_at"]
    verbose_name = "workspace membership"


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "name", "is_active", "is_staff", "date_joined", "last_login"]
    list_filter = ["is_active", "is_staff", "is_superuser", "date_joined"]
    search_fields = ["email", "name", "memberships__workspace__slug"]
    readonly_fields = ["date_joined", "last_login"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "name", "password1", "password2")}),)
    inlines = [UserMembershipInline]


@admin.register(Connection)
class ConnectionAdmin(ReadOnlyAdmin):
    """Made on the consent screen; staff can revoke them, which kills every token at once."""

    list_display = ["application", "user", "workspace", "scope", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at", "created_at", "last_used_at"]
    search_fields = ["user__email", "workspace__name", "workspace__slug", "application__name", "application__client_id"]
    list_select_related = ["application", "user", "workspace"]
    fields = [
        "uid",
        "application",
        "publisher",
        "redirect_uri",
        "redirect_uris",
        "user",
        "workspace",
        "scope",
        "live_credentials",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = ["publisher", "redirect_uris", "live_credentials"]
    actions = ["revoke"]

    @admin.display(description="Publisher")
    def publisher(self, obj: Connection) -> str:
        # From the redirect URI the latest consent used, as the dashboard shows it.
        publisher = obj.publisher
        return (
            f"{publisher.name} ({publisher.vendor}, verified)"
            if publisher.verified
            else f"{publisher.name} (unverified)"
        )

    @admin.display(description="Client's registered redirect URIs")
    def redirect_uris(self, obj: Connection) -> str:
        return obj.application.redirect_uris

    @admin.display(description="Live credentials")
    def live_credentials(self, obj: Connection) -> str:
        now = timezone.now()
        access = AccessToken.objects.filter(connection_link__connection=obj, expires__gt=now).count()
        refresh = RefreshToken.objects.filter(connection_link__connection=obj, revoked__isnull=True).count()
        return f"{access} access token(s), {refresh} refresh token(s)"

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return may_act_on(request, Connection)

    @admin.action(description="Revoke selected connections (their tokens stop working at once)", permissions=["revoke"])
    def revoke(self, request: AuthenticatedHttpRequest, queryset: ConnectionQuerySet) -> None:
        revoked = 0
        for connection in queryset.active().select_related("application", "user", "workspace"):
            revoke_connection(actor=request.user, connection=connection)
            revoked += 1
        self.message_user(
            request,
            ngettext("Revoked %d connection.", "Revoked %d connections.", revoked) % revoked,
            messages.SUCCESS if revoked else messages.WARNING,
        )


# django-oauth-toolkit's own admins, replaced: clients register themselves and tokens come from
# the OAuth flows, so all of it is read-only here; client secrets are never shown (hashed they
# help nobody, in clear they must not leak) and tokens only as their last characters.
for model in (Application, AccessToken, RefreshToken, Grant, IDToken):
    admin.site.unregister(model)


@admin.register(Application)
class ApplicationAdmin(ReadOnlyAdmin):
    list_display = ["name", "client_id", "client_type", "registration_source", "connection_count", "created"]
    list_filter = ["client_type", "registration_source", "skip_authorization", "created"]
    search_fields = ["name", "client_id", "redirect_uris", "user__email"]
    fields = [
        "name",
        "client_id",
        "client_type",
        "authorization_grant_type",
        "registration_source",
        "redirect_uris",
        "post_logout_redirect_uris",
        "allowed_origins",
        "algorithm",
        "skip_authorization",
        "user",
        "created",
        "updated",
        "cimd_expires_at",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(connection_total=Count("avtrz_connections"))

    @admin.display(description="Connections", ordering="connection_total")
    def connection_count(self, obj) -> int:
        return obj.connection_total


def _workspace(token) -> str:
    link = getattr(token, "connection_link", None)
    return str(link.connection.workspace) if link else "—"


class _TokenAdmin(ReadOnlyAdmin):
    """Read-only credential pages, with the revoke action for staff who may change them."""

    # No application filter, as DOT has: it would list every dynamically registered client.
    search_fields = dot_admin.AccessTokenAdmin.search_fields + ("connection_link__connection__workspace__slug",)
    list_select_related = ["application", "user", "connection_link__connection__workspace"]

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return may_act_on(request, self.model)

    @admin.display(description="Workspace")
    def workspace(self, obj) -> str:
        return _workspace(obj)

    @admin.display(description="Token")
    def masked_token(self, obj) -> str:
        # Only the token's SHA-256 digest is stored; its last characters tell rows apart.
        return f"sha256 …{obj.token_checksum[-8:]}" if obj is not None else ""


@admin.register(AccessToken)
class AccessTokenAdmin(_TokenAdmin, dot_admin.AccessTokenAdmin):
    list_display = ["pk", "masked_token", "user", "application", "workspace", "expires", "created"]
    list_filter = ["expires", "created"]
    fields = ["masked_token", "user", "application", "workspace", "scope", "resource", "expires", "created", "updated"]
    readonly_fields = ["masked_token", "workspace"]
    actions = ["revoke_tokens"]

    @admin.action(description="Revoke selected access tokens", permissions=["revoke"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet) -> None:
        dot_admin.AccessTokenAdmin.revoke_tokens(self, request, queryset)


@admin.register(RefreshToken)
class RefreshTokenAdmin(_TokenAdmin, dot_admin.RefreshTokenAdmin):
    list_display = ["pk", "masked_token", "user", "application", "workspace", "created", "revoked"]
    list_filter = ["revoked", "created"]
    fields = ["masked_token", "user", "application", "workspace", "token_family", "created", "updated", "revoked"]
    readonly_fields = ["masked_token", "workspace"]
    actions = ["revoke_tokens"]

    @admin.action(description="Revoke selected refresh tokens", permissions=["revoke"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet) -> None:
        dot_admin.RefreshTokenAdmin.revoke_tokens(self, request, queryset)


@admin.register(Grant)
class GrantAdmin(_TokenAdmin, dot_admin.GrantAdmin):
    list_display = ["pk", "masked_code", "user", "application", "workspace", "expires"]
    list_filter = ["expires", "created"]
    fields = ["masked_code", "user", "application", "workspace", "redirect_uri", "scope", "expires", "created"]
    readonly_fields = ["masked_code", "workspace"]


@admin.register(IDToken)
class IDTokenAdmin(ReadOnlyAdmin):
    list_display = ["jti", "user", "application", "expires", "created"]
    list_filter = ["expires", "created"]
    search_fields = dot_admin.IDTokenAdmin.search_fields
    list_select_related = ["application", "user"]
    fields = ["jti", "user", "application", "scope", "expires", "created"]
