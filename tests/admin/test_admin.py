"""The support admin: every page opens, searches find what support looks for, actions go through
the service functions, and no page ever shows a key or token in clear."""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, Grant, RefreshToken

from accounts.connections import workspace_for_access_token
from accounts.models import Connection, ConnectionLink
from avtrz.avatars.cards import image_url
from avtrz.avatars.models import Profile
from tests.factories import UserFactory
from tests.oauth.oauthutil import stored
from workspaces import services
from workspaces.models import ApiKey, AuditEvent, DailyUsage, Plan


pytestmark = pytest.mark.django_db


@pytest.fixture
def keys(acme, alice):
    """Acme's keys in clear, as only their creator ever sees them."""
    return {
        "pk": services.create_api_key(actor=alice, workspace=acme, kind=ApiKey.Kind.PUBLISHABLE, name="Web"),
        "sk": services.create_api_key(actor=alice, workspace=acme, kind=ApiKey.Kind.SECRET, name="Server"),
        "connector": services.connector_publishable_key(acme),
    }


@pytest.fixture
def everything(alice_client, connect, keys, eileen, acme, alice, bob, django_capture_on_commit_callbacks):
    """A bit of every kind of record support looks at; returns every credential in clear."""
    with django_capture_on_commit_callbacks(execute=True):
        services.invite_member(actor=alice, workspace=acme, email="dora@example.com", role="member")
    assert alice_client.get("/v1/avatar", {"key": keys["pk"], "username": "eileen-collins"}).status_code == 302
    DailyUsage.objects.create(workspace=acme, day=timezone.now().date(), api_hits=1)
    app, token = connect(alice_client)
    connection = Connection.objects.get()
    grant = Grant.objects.create(
        user=alice,
        application=connection.application,
        code="pending-authorization-code-0123456789",
        expires=timezone.now() + timedelta(minutes=1),
        redirect_uri="https://claude.ai/api/mcp/auth_callback",
        code_challenge="x" * 43,
        code_challenge_method="S256",
    )
    ConnectionLink.objects.create(connection=connection, grant=grant)
    tokens = [token["access_token"], token["refresh_token"], app["registration_access_token"]]
    return [*keys.values(), *tokens, grant.code]


def _admin_urls():
    """The changelist and up to three change pages of every model registered in the admin."""
    urls = ["/admin/"]
    for model in admin.site._registry:
        opts = model._meta
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        for pk in model._default_manager.values_list("pk", flat=True)[:3]:
            urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk]))
            urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_history", args=[pk]))
    return urls


def _act(client, model, action, objects, **extra):
    opts = model._meta
    return client.post(
        reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
        {"action": action, ACTION_CHECKBOX_NAME: [obj.pk for obj in objects], **extra},
        follow=True,
    )


def test_every_page_opens_and_none_shows_a_credential(staff_client, everything):
    secrets = everything
    hashed_client_secrets = [s for s in Application.objects.values_list("client_secret", flat=True) if s]
    for url in _admin_urls():
        response = staff_client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        for secret in [*secrets, *hashed_client_secrets]:
            assert secret not in html, f"a credential shows on {url}"


def test_every_model_that_support_needs_is_registered():
    registered = {model._meta.label for model in admin.site._registry}
    assert {
        "accounts.User",
        "accounts.Connection",
        "workspaces.Workspace",
        "workspaces.Membership",
        "workspaces.Invitation",
        "workspaces.ApiKey",
        "workspaces.Plan",
        "workspaces.UsagePeriod",
        "workspaces.DailyUsage",
        "workspaces.AuditEvent",
        "avatars.Profile",
        "avatars.AvatarImage",
        "oauth2_provider.Application",
        "oauth2_provider.AccessToken",
        "oauth2_provider.RefreshToken",
        "oauth2_provider.Grant",
    } <= registered


def test_tokens_show_masked(staff_client, everything):
    _pk, _sk, _connector, access_token, *_rest = everything
    token = stored(AccessToken, access_token).get()
    html = staff_client.get(reverse("admin:oauth2_provider_accesstoken_change", args=[token.pk])).content.decode()
    assert f"sha256 …{token.token_checksum[-8:]}" in html
    assert access_token not in html and access_token[-4:] not in html
    assert "Acme" in html  # the workspace the token acts for


@pytest.mark.parametrize(
    ("changelist", "query", "expected"),
    [
        ("accounts_user", "bob@example.com", "bob@example.com"),
        ("accounts_user", "acme", "alice@example.com"),
        ("workspaces_workspace", "acme", "Acme"),
        ("workspaces_workspace", "alice@example.com", "Acme"),
        ("workspaces_membership", "bob@example", "bob@example.com"),
        ("workspaces_invitation", "acme", "dora@example.com"),
        ("workspaces_auditevent", "acme", "created"),
        ("workspaces_usageperiod", "acme", "Acme"),
        ("accounts_connection", "alice@example.com", "Acme"),
        ("avatars_profile", "eileen-collins", "Eileen Collins"),
        ("avatars_profile", "https://uk.linkedin.com/in/Eileen-Collins/?trk=x", "Eileen Collins"),
        ("avatars_avatarimage", "eileen-collins", "eileen-collins"),
        ("oauth2_provider_accesstoken", "acme", "AccessToken"),
    ],
)
def test_searches(staff_client, everything, changelist, query, expected):
    response = staff_client.get(reverse(f"admin:{changelist}_changelist"), {"q": query})
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1
    assert expected in response.content.decode()


def test_keys_are_found_by_prefix_and_by_their_masked_form(staff_client, keys):
    secret = ApiKey.objects.get(kind=ApiKey.Kind.SECRET)
    url = reverse("admin:workspaces_apikey_changelist")
    for query in (secret.prefix, secret.prefix[:10], secret.masked):
        results = staff_client.get(url, {"q": query}).context["cl"].result_list
        assert list(results) == [secret], query


def test_the_revoke_action_stops_a_key_at_once(staff_client, staff, keys, eileen, django_capture_on_commit_callbacks):
    lookup = {"key": keys["pk"], "username": "eileen-collins"}
    assert Client().get("/v1/avatar", lookup).status_code == 302  # and its context is now cached
    key = ApiKey.objects.get(kind=ApiKey.Kind.PUBLISHABLE, for_connector=False)
    with django_capture_on_commit_callbacks(execute=True):
        response = _act(staff_client, ApiKey, "revoke", [key])
    assert "Revoked 1 key." in response.content.decode()
    assert Client().get("/v1/avatar", lookup).status_code == 401
    event = AuditEvent.objects.get(action=AuditEvent.Action.KEY_REVOKED)
    assert event.actor == staff


def test_the_refresh_action_enriches_the_profile(staff_client, linkedin, django_capture_on_commit_callbacks):
    linkedin.profile("dana-okafor", name="Dana Okafor", photo_url=linkedin.photo("face.jpg"))
    profile = Profile.objects.create(handle="dana-okafor", status=Profile.Status.NOT_FOUND)
    with django_capture_on_commit_callbacks(execute=True):
        response = _act(staff_client, Profile, "refresh_now", [profile])
    assert "Queued a refresh of 1 profile." in response.content.decode()
    profile.refresh_from_db()
    assert profile.status == Profile.Status.RESOLVED
    assert profile.name == "Dana Okafor"
    thumbnail = image_url(profile.current_image.rendition(64, "webp"), "webp")
    html = staff_client.get(reverse("admin:avatars_profile_changelist")).content.decode()
    assert f'<img src="{thumbnail}" width="64" height="64" alt="Photo of Dana Okafor"' in html


def test_profile_text_is_escaped(staff_client, eileen):
    Profile.objects.filter(pk=eileen.pk).update(name='<script>alert("x")</script>')
    html = staff_client.get(reverse("admin:avatars_profile_changelist")).content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert" in html


def test_the_connection_revoke_action_kills_its_tokens(staff_client, staff, alice_client, connect):
    _app, token = connect(alice_client)
    assert workspace_for_access_token(token["access_token"]) is not None
    response = _act(staff_client, Connection, "revoke", Connection.objects.all())
    assert "Revoked 1 connection." in response.content.decode()
    assert workspace_for_access_token(token["access_token"]) is None
    assert not stored(AccessToken, token["access_token"]).exists()
    assert stored(RefreshToken, token["refresh_token"]).get().revoked is not None
    assert AuditEvent.objects.get(action=AuditEvent.Action.CONNECTION_REVOKED).actor == staff


def test_staff_with_view_access_only_cannot_revoke(keys):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__in=["view_apikey"]))
    client = Client()
    client.force_login(viewer)
    assert client.get(reverse("admin:workspaces_apikey_changelist")).status_code == 200
    _act(client, ApiKey, "revoke", ApiKey.objects.all())
    assert not ApiKey.objects.filter(revoked_at__isnull=False).exists()


def test_a_plan_change_by_staff_goes_through_the_service(staff_client, staff, acme, django_capture_on_commit_callbacks):
    pro = Plan.objects.get(code="pro")
    url = reverse("admin:workspaces_workspace_change", args=[acme.pk])
    form = staff_client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name in form.fields}
    data.update(
        {
            "plan": pro.pk,
            "memberships-TOTAL_FORMS": 1,
            "memberships-INITIAL_FORMS": 1,
            "memberships-0-id": acme.memberships.get().pk,
            "memberships-0-workspace": acme.pk,
            "memberships-0-user": acme.memberships.get().user_id,
            "memberships-0-role": "owner",
            "api_keys-TOTAL_FORMS": 0,
            "api_keys-INITIAL_FORMS": 0,
        }
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    acme.refresh_from_db()
    assert acme.plan == pro
    event = AuditEvent.objects.get(action=AuditEvent.Action.PLAN_CHANGED)
    assert event.actor == staff and event.data["source"] == "admin"
    assert acme.usage_periods.get().requests_limit == pro.monthly_requests


@pytest.mark.parametrize("url", ["/admin/", "/admin/workspaces/apikey/", "/admin/oauth2_provider/accesstoken/"])
def test_people_who_are_not_staff_are_sent_to_the_admin_login(client, alice_client, url):
    for visitor in (Client(), alice_client):
        response = visitor.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
