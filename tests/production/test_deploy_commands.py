"""The commands the README's deploy path uses to set up a production workspace from a shell:
`create_workspace` (a workspace and its owner), then `create_api_key` for it."""

import io

import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from workspaces.models import ApiKey, Membership, Workspace


STRONG = "correct-horse-battery-staple-42"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


@pytest.mark.django_db
def test_a_workspace_and_its_new_owner_then_a_key(monkeypatch):
    monkeypatch.setenv("AVTRZ_OWNER_PASSWORD", STRONG)
    slug = run("create_workspace", "--name", "Acme Corp", "--owner", " Owner@Example.com ", "--no-input")
    workspace = Workspace.objects.get(slug=slug)
    owner = User.objects.get(email="owner@example.com")
    assert workspace.name == "Acme Corp" and owner.check_password(STRONG) and owner.is_active
    assert Membership.objects.get(workspace=workspace).user == owner
    assert Membership.objects.get(workspace=workspace).role == Membership.Role.OWNER
    key = run("create_api_key", "--workspace", slug, "--kind", "publishable", "--name", "site")
    assert key.startswith("pk_live_") and ApiKey.objects.filter(workspace=workspace).exists()


@pytest.mark.django_db
def test_an_existing_account_owns_the_new_workspace_without_a_password(alice, monkeypatch):
    monkeypatch.delenv("AVTRZ_OWNER_PASSWORD", raising=False)
    slug = run("create_workspace", "--name", "Second", "--owner", alice.email.upper(), "--no-input")
    assert Membership.objects.get(workspace__slug=slug).user == alice


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (["--name", "Acme", "--owner", "new@example.com"], None, "set AVTRZ_OWNER_PASSWORD"),
        (["--name", "Acme", "--owner", "new@example.com"], "password", "too common"),
        (["--name", "Acme", "--owner", "not-an-email"], STRONG, "'not-an-email' is not an email address"),
        (["--name", "Acme\nInc", "--owner", "new@example.com"], STRONG, "control character"),
    ],
)
def test_refusals_create_nothing(args, password, message, monkeypatch):
    if password is None:
        monkeypatch.delenv("AVTRZ_OWNER_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("AVTRZ_OWNER_PASSWORD", password)
    with pytest.raises(CommandError, match=message):
        run("create_workspace", *args, "--no-input")
    assert not User.objects.exists() and not Workspace.objects.exists()
