"""Shared pieces of the support admin (``/admin/``), used by every app's ``admin.py``."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_permission_codename
from django.db.models import Model
from django.http import HttpRequest


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records the product's own flows write (keys, usage, audit, tokens, profiles).

    Staff may look, never type into them: an edit here would skip the audit row, the cache
    invalidation and the checks the service functions do. Changes go through admin actions
    that call those functions.
    """

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """The same rule for records shown inside another record's page."""

    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


def may_act_on(request: HttpRequest, model: type[Model]) -> bool:
    """Whether the user holds ``model``'s change permission.

    Actions on read-only records (revoke, refresh) need it, since the admin page itself never
    grants change: a support agent with view access alone can look but not revoke.
    """
    opts = model._meta
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}")
