from django.http import HttpRequest

from workspaces.access import SESSION_KEY
from workspaces.models import Membership


def current_workspace(request: HttpRequest) -> dict:
    """The user's workspaces for the navigation switcher, and which one is current."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    memberships = list(Membership.objects.select_related("workspace").filter(user=request.user))
    slug = request.session.get(SESSION_KEY)
    current = next((m for m in memberships if m.workspace.slug == slug), memberships[0] if memberships else None)
    return {"nav_memberships": memberships, "nav_membership": current}
