from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts.views import safe_next
from workspaces import services
from workspaces.access import current_membership, get_membership
from workspaces.forms import InviteForm, RoleForm, WorkspaceNameForm
from workspaces.models import Invitation, Membership


Role = Membership.Role


def _error_messages(exc: ValidationError | PermissionDenied) -> str:
    return " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


@require_safe
@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The dashboard's front door: the current workspace, or creating a first one."""
    membership = current_membership(request)
    if membership is None:
        return redirect("workspaces:create")
    return redirect("workspaces:overview", slug=membership.workspace.slug)


@require_safe
@login_required
def workspace_list(request: HttpRequest) -> HttpResponse:
    memberships = Membership.objects.select_related("workspace", "workspace__plan").filter(user=request.user)
    return render(request, "workspaces/list.html", {"memberships": memberships})


@require_http_methods(["GET", "POST"])
@login_required
def create(request: HttpRequest) -> HttpResponse:
    form = WorkspaceNameForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        workspace = services.create_workspace(owner=request.user, name=form.cleaned_data["name"])
        request.session["current_workspace"] = workspace.slug
        messages.success(request, f"Created {workspace.name}.")
        return redirect(safe_next(request, reverse("workspaces:overview", kwargs={"slug": workspace.slug})))
    return render(request, "workspaces/create.html", {"form": form, "next": safe_next(request, "")})


@require_safe
@login_required
def overview(request: HttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug)
    return render(request, "workspaces/overview.html", {"membership": membership, "workspace": membership.workspace})


@require_POST
@login_required
def switch(request: HttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug)
    messages.info(request, f"Switched to {membership.workspace.name}.")
    return redirect("workspaces:overview", slug=slug)


@require_safe
@login_required
def settings_page(request: HttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug)
    form = WorkspaceNameForm(initial={"name": membership.workspace.name})
    return render(request, "workspaces/settings.html", {"membership": membership, "form": form})


@require_POST
@login_required
def rename(request: HttpRequest, slug: str) -> HttpResponse:
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
def members(request: HttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug)
    return render(request, "workspaces/members.html", _members_context(membership))


@require_POST
@login_required
def invite(request: HttpRequest, slug: str) -> HttpResponse:
    membership = get_membership(request, slug, min_role=Role.ADMIN)
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            services.invite_member(actor=membership, email=form.cleaned_data["email"], role=form.cleaned_data["role"])
        except (ValidationError, PermissionDenied) as exc:
            form.add_error("email", _error_messages(exc))
    if not form.is_valid():
        return render(request, "workspaces/members.html", _members_context(membership, form), status=400)
    messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
    return redirect("workspaces:members", slug=slug)


@require_POST
@login_required
def revoke_invitation(request: HttpRequest, slug: str, uid) -> HttpResponse:
    membership = get_membership(request, slug, min_role=Role.ADMIN)
    invitation = get_object_or_404(Invitation, uid=uid, workspace=membership.workspace)
    services.revoke_invitation(actor=membership, invitation=invitation)
    messages.success(request, f"Invitation for {invitation.email} revoked.")
    return redirect("workspaces:members", slug=slug)


def _member_or_404(membership: Membership, uid) -> Membership:
    return get_object_or_404(Membership.objects.select_related("user"), uid=uid, workspace=membership.workspace)


@require_POST
@login_required
def remove_member(request: HttpRequest, slug: str, uid) -> HttpResponse:
    membership = get_membership(request, slug, min_role=Role.ADMIN)
    target = _member_or_404(membership, uid)
    try:
        services.remove_member(actor=membership, membership=target)
    except ValidationError as exc:
        messages.error(request, _error_messages(exc))
    else:
        messages.success(request, f"Removed {target.user}.")
    return redirect("workspaces:members", slug=slug)


@require_POST
@login_required
def change_role(request: HttpRequest, slug: str, uid) -> HttpResponse:
    membership = get_membership(request, slug, min_role=Role.ADMIN)
    target = _member_or_404(membership, uid)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
        return redirect("workspaces:members", slug=slug)
    try:
        services.change_role(actor=membership, membership=target, role=form.cleaned_data["role"])
    except ValidationError as exc:
        messages.error(request, _error_messages(exc))
    else:
        messages.success(request, f"{target.user} is now {Role(form.cleaned_data['role']).label.lower()}.")
    return redirect("workspaces:members", slug=slug)


@require_POST
@login_required
def leave(request: HttpRequest, slug: str) -> HttpResponse:
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
