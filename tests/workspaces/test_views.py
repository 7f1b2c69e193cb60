"""Every workspace page and action: works for the right role, 404 for outsiders, 403 for too-low roles,
405 for the wrong method, and clear form errors."""

import re

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied

from tests.factories import MembershipFactory, UserFactory
from workspaces import services
from workspaces.models import AuditEvent, Invitation, Membership, Workspace


pytestmark = pytest.mark.django_db

Role = Membership.Role

READ_PAGES = ["/w/acme/", "/w/acme/members/", "/w/acme/settings/"]


@pytest.mark.parametrize("url", READ_PAGES)
def test_members_can_read_workspace_pages(bob_client, url):
    response = bob_client.get(url)
    assert response.status_code == 200
    assert "Acme" in response.content.decode()


@pytest.mark.parametrize("url", READ_PAGES)
def test_outsiders_get_404(charlie_client, acme, url):
    assert charlie_client.get(url).status_code == 404


@pytest.mark.parametrize("url", READ_PAGES)
def test_anonymous_users_are_sent_to_sign_in(client, acme, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


@pytest.mark.parametrize("url", READ_PAGES)
def test_read_pages_refuse_post(alice_client, url):
    assert alice_client.post(url).status_code == 405


POST_ACTIONS = [
    "/w/acme/rename/",
    "/w/acme/members/invite/",
    "/w/acme/switch/",
    "/w/acme/leave/",
]


@pytest.mark.parametrize("url", POST_ACTIONS)
def test_actions_refuse_get(alice_client, url):
    assert alice_client.get(url).status_code == 405


@pytest.mark.parametrize("url", POST_ACTIONS)
def test_actions_are_404_for_outsiders(charlie_client, acme, url):
    assert charlie_client.post(url, {"name": "Hijacked", "email": "x@example.com", "role": "member"}).status_code == 404
    assert Workspace.objects.get(slug="acme").name == "Acme"


def test_home_goes_to_the_remembered_workspace(alice_client, alice):
    MembershipFactory(user=alice, workspace__slug="second", workspace__name="Second", role=Role.OWNER)
    assert alice_client.get("/dashboard/")["Location"] == "/w/acme/"
    alice_client.post("/w/second/switch/")
    assert alice_client.get("/dashboard/")["Location"] == "/w/second/"


def test_workspace_list_shows_only_my_workspaces(alice_client, charlie):
    body = alice_client.get("/workspaces/").content.decode()
    assert "Acme" in body
    assert "Charlie Co" not in body


def test_create_workspace_makes_me_owner(charlie_client, charlie):
    response = charlie_client.post("/workspaces/new/", {"name": "  Rocket Labs "})
    workspace = Workspace.objects.get(name="Rocket Labs")
    assert response["Location"] == f"/w/{workspace.slug}/"
    assert workspace.slug == "rocket-labs"
    assert workspace.plan.code == "free"
    assert workspace.memberships.get().user == charlie
    assert workspace.memberships.get().role == Role.OWNER
    assert AuditEvent.objects.filter(workspace=workspace, action="workspace.created").exists()


def test_create_workspace_slugs_are_unique(alice_client, acme):
    alice_client.post("/workspaces/new/", {"name": "Acme"})
    slugs = set(Workspace.objects.filter(name="Acme").values_list("slug", flat=True))
    assert len(slugs) == 2
    assert "acme" in slugs


def test_create_workspace_requires_a_name(charlie_client):
    response = charlie_client.post("/workspaces/new/", {"name": "   "})
    assert response.status_code == 200
    assert response.context["form"].errors["name"]


def test_create_workspace_continues_to_a_local_next(charlie_client):
    response = charlie_client.post("/workspaces/new/", {"name": "Next Co", "next": "/o/authorize/?client_id=abc"})
    assert response["Location"] == "/o/authorize/?client_id=abc"


def test_admin_can_rename(alice_client, acme):
    response = alice_client.post("/w/acme/rename/", {"name": "Acme Corp"})
    assert response["Location"] == "/w/acme/settings/"
    acme.refresh_from_db()
    assert acme.name == "Acme Corp"
    assert acme.slug == "acme"


def test_rename_validates(alice_client):
    response = alice_client.post("/w/acme/rename/", {"name": ""})
    assert response.status_code == 400
    assert response.context["form"].errors["name"]


def test_member_cannot_rename(bob_client, acme):
    assert bob_client.post("/w/acme/rename/", {"name": "Bob's"}).status_code == 403
    acme.refresh_from_db()
    assert acme.name == "Acme"


def test_invite_sends_an_email_with_a_working_link(alice_client, django_capture_on_commit_callbacks, client):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post("/w/acme/members/invite/", {"email": "Dana@Example.com", "role": "admin"})
    assert response["Location"] == "/w/acme/members/"
    invitation = Invitation.objects.get()
    assert invitation.email == "dana@example.com"
    assert invitation.role == "admin"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["dana@example.com"]
    link = re.search(r"http://\S+(/invitations/\S+/)", mail.outbox[0].body).group(1)
    token = link.split("/")[2]
    assert token not in invitation.token_digest  # only a digest is stored

    dana = UserFactory(email="dana@example.com")
    alice_client.logout()
    client.force_login(dana)
    assert "Join Acme" in client.get(link).content.decode()
    assert client.post(link)["Location"] == "/w/acme/"
    assert Membership.objects.get(user=dana, workspace__slug="acme").role == Role.ADMIN
    assert client.post(link).status_code == 400  # used up


def test_invitation_for_someone_else_is_refused(alice_client, client, charlie):
    alice_client.post("/w/acme/members/invite/", {"email": "dana@example.com", "role": "member"})
    invitation = Invitation.objects.get()
    token = invitation.issue_token()
    invitation.save()
    client.force_login(charlie)
    response = client.post(f"/invitations/{token}/")
    assert response.status_code == 400
    assert "sent to dana@example.com" in response.content.decode()
    assert not Membership.objects.filter(user=charlie, workspace__slug="acme").exists()


def test_invitation_link_sends_anonymous_visitors_to_sign_in_and_back(client, alice_client):
    alice_client.post("/w/acme/members/invite/", {"email": "erin@example.com", "role": "member"})
    invitation = Invitation.objects.get()
    token = invitation.issue_token()
    invitation.save()
    alice_client.logout()
    page = client.get(f"/invitations/{token}/").content.decode()
    assert "Create an account" in page
    response = client.post(f"/invitations/{token}/")
    assert response["Location"].startswith("/accounts/login/?next=/invitations/")


def test_unknown_invitation_token_is_404(client):
    assert client.get("/invitations/not-a-real-token/").status_code == 404


def test_invite_validates(alice_client, bob):
    response = alice_client.post("/w/acme/members/invite/", {"email": "not an email", "role": "member"})
    assert response.status_code == 400
    assert response.context["invite_form"].errors["email"]
    response = alice_client.post("/w/acme/members/invite/", {"email": bob.email, "role": "member"})
    assert response.status_code == 400
    assert "already a member" in response.context["invite_form"].errors["email"][0]
    response = alice_client.post("/w/acme/members/invite/", {"email": "x@example.com", "role": "emperor"})
    assert response.status_code == 400
    assert response.context["invite_form"].errors["role"]


def test_member_cannot_invite(bob_client):
    assert bob_client.post("/w/acme/members/invite/", {"email": "x@example.com", "role": "member"}).status_code == 403
    assert not Invitation.objects.exists()


def test_admin_cannot_invite_an_owner(client, acme, bob):
    Membership.objects.filter(user=bob).update(role=Role.ADMIN)
    client.force_login(bob)
    response = client.post("/w/acme/members/invite/", {"email": "x@example.com", "role": "owner"})
    assert response.status_code == 400
    assert "Only owners" in response.context["invite_form"].errors["email"][0]


def test_revoke_invitation(alice_client):
    alice_client.post("/w/acme/members/invite/", {"email": "x@example.com", "role": "member"})
    uid = Invitation.objects.get().uid
    assert alice_client.post(f"/w/acme/invitations/{uid}/revoke/")["Location"] == "/w/acme/members/"
    assert not Invitation.objects.exists()


def test_revoke_invitation_of_another_workspace_is_404(charlie_client, alice_client):
    alice_client.post("/w/acme/members/invite/", {"email": "x@example.com", "role": "member"})
    uid = Invitation.objects.get().uid
    assert charlie_client.post(f"/w/charlie-co/invitations/{uid}/revoke/").status_code == 404
    assert Invitation.objects.exists()


def test_owner_removes_a_member(alice_client, bob):
    uid = Membership.objects.get(user=bob).uid
    assert alice_client.post(f"/w/acme/members/{uid}/remove/")["Location"] == "/w/acme/members/"
    assert not Membership.objects.filter(user=bob).exists()
    assert AuditEvent.objects.filter(action="member.removed").exists()


def test_member_cannot_remove(bob_client, alice):
    uid = Membership.objects.get(user=alice).uid
    assert bob_client.post(f"/w/acme/members/{uid}/remove/").status_code == 403
    assert Membership.objects.filter(user=alice).exists()


def test_admin_cannot_remove_an_owner(client, alice, bob):
    Membership.objects.filter(user=bob).update(role=Role.ADMIN)
    client.force_login(bob)
    uid = Membership.objects.get(user=alice).uid
    assert client.post(f"/w/acme/members/{uid}/remove/").status_code == 403


def test_the_member_services_check_who_acts_whatever_the_caller(acme, bob, charlie):
    """Not only the views: a plain member, or the owner of another workspace, manages no one in Acme."""
    bobs = Membership.objects.get(user=bob)
    with pytest.raises(PermissionDenied):
        services.invite_member(actor=bob, workspace=acme, email="x@example.com", role=Role.MEMBER)
    with pytest.raises(PermissionDenied):
        services.remove_member(actor=charlie, membership=bobs)
    with pytest.raises(PermissionDenied):
        services.change_role(actor=charlie, membership=bobs, role=Role.ADMIN)
    assert not Invitation.objects.exists()
    assert Membership.objects.get(user=bob).role == Role.MEMBER
    assert not AuditEvent.objects.exists()


def test_role_change(alice_client, bob):
    uid = Membership.objects.get(user=bob).uid
    alice_client.post(f"/w/acme/members/{uid}/role/", {"role": "admin"})
    assert Membership.objects.get(user=bob).role == Role.ADMIN
    response = alice_client.post(f"/w/acme/members/{uid}/role/", {"role": "king"}, follow=True)
    assert "Choose a valid role" in response.content.decode()


def test_last_owner_cannot_step_down_or_leave(alice_client, alice, bob):
    uid = Membership.objects.get(user=alice).uid
    response = alice_client.post(f"/w/acme/members/{uid}/role/", {"role": "member"}, follow=True)
    assert "at least one owner" in response.content.decode()
    response = alice_client.post("/w/acme/leave/", follow=True)
    assert "at least one owner" in response.content.decode()
    assert Membership.objects.get(user=alice).role == Role.OWNER


def test_owner_can_leave_once_another_owner_exists(alice_client, alice, bob):
    Membership.objects.filter(user=bob).update(role=Role.OWNER)
    assert alice_client.post("/w/acme/leave/")["Location"] == "/dashboard/"
    assert not Membership.objects.filter(user=alice).exists()


def test_member_can_leave(bob_client, bob):
    bob_client.post("/w/acme/leave/")
    assert not Membership.objects.filter(user=bob).exists()
    assert bob_client.get("/w/acme/").status_code == 404


def test_a_page_of_the_current_workspace_leaves_the_session_unwritten(alice_client, acme):
    """A page's requests run side by side (live-usage polls beside a form post): one that saved the whole
    session back for nothing would drop what another just stored, like a new key's one-time view."""
    alice_client.get("/w/acme/")
    assert not alice_client.get("/w/acme/usage/").wsgi_request.session.modified
    assert alice_client.get("/w/acme/usage/").status_code == 200
