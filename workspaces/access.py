"""The one way a view reaches a workspace: outsiders get 404, too-low roles get 403."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from accounts.models import AuthenticatedHttpRequest
from workspaces.models import Membership


SESSION_KEY = "current_workspace"


def get_membership(
    request: AuthenticatedHttpRequest, slug: str, *, min_role: str = Membership.Role.MEMBER
) -> Membership:
    """The signed-in user's membership in the workspace `slug`, remembered as the current one.

    404 when the user is not a member, so a workspace's existence does not leak;
    403 when the user is a member without the role the action needs.
    """
    membership = (
        Membership.objects.select_related("workspace", "workspace__plan", "user")
        .filter(workspace__slug=slug, user=request.user)
        .first()
    )
    if membership is None:
        raise Http404("No such workspace.")
    if not membership.has_role(min_role):
        raise PermissionDenied(f"This needs the {Membership.Role(min_role).label.lower()} role or higher.")
    # Written only when it changes: setting it marks the whole session for saving, and a page's concurrent
    # requests (live-usage polls) would save back a copy read before another request's write, losing e.g.
    # the one-time view of a new key.
    if request.session.get(SESSION_KEY) != slug:
        request.session[SESSION_KEY] = slug
    return membership


def current_membership(request: HttpRequest) -> Membership | None:
    """The workspace the user last worked in, else their first one."""
    if not request.user.is_authenticated:
        return None
    memberships = Membership.objects.select_related("workspace").filter(user=request.user)
    remembered = request.session.get(SESSION_KEY)
    return (remembered and memberships.filter(workspace__slug=remembered).first()) or memberships.first()
