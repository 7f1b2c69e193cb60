"""The AI connector key's derivation secret: its own setting, never SECRET_KEY in production, and a
rotation that keeps the MCP lookups and the image URLs already handed out working."""

import secrets

import pytest
from django.core.cache import cache

from avtrz.lib import hotcache
from mcpserver import lookups
from tests.factories import WorkspaceFactory
from tests.test_infrastructure import PRODUCTION_ENV, _manage
from tests.workspaces.test_connector_key import _avatar
from workspaces import keys
from workspaces.models import ApiKey, AuditEvent


OLD, NEW = secrets.token_urlsafe(40), secrets.token_urlsafe(40)


def test_production_refuses_to_start_without_a_derivation_secret():
    env = {name: value for name, value in PRODUCTION_ENV.items() if name != "AVTRZ_KEY_DERIVATION_SECRET"}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "Set AVTRZ_KEY_DERIVATION_SECRET" in result.stderr
    assert env["SECRET_KEY"] not in result.stderr


def _an_hour_later() -> None:
    """The MCP lookup's cached clear key (an hour) and every cached key context are gone."""
    cache.clear()
    hotcache.reset()


@pytest.fixture
def issued(settings, acme):
    settings.AVTRZ_KEY_DERIVATION_SECRET, settings.AVTRZ_KEY_DERIVATION_SECRET_FALLBACKS = OLD, []
    return lookups.connector(acme).key


@pytest.mark.django_db
def test_rotating_secret_key_leaves_the_connector_key_alone(settings, acme, issued):
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = secrets.token_urlsafe(50), [settings.SECRET_KEY]
    _an_hour_later()
    assert lookups.connector(acme).key == issued


@pytest.mark.django_db
def test_a_rotated_derivation_secret_keeps_handing_out_the_same_key_from_its_fallback(settings, acme, issued):
    settings.AVTRZ_KEY_DERIVATION_SECRET, settings.AVTRZ_KEY_DERIVATION_SECRET_FALLBACKS = NEW, [OLD]
    _an_hour_later()
    connector = lookups.connector(acme)
    assert connector.key == issued  # the URLs already out and the new ones carry the same key
    assert connector.key_id == ApiKey.objects.get(workspace=acme, for_connector=True).pk
    fresh = lookups.connector(WorkspaceFactory()).key
    settings.AVTRZ_KEY_DERIVATION_SECRET_FALLBACKS = []
    assert ApiKey.objects.for_key(fresh).derived_value() == fresh  # new keys come from the new secret


@pytest.mark.django_db
def test_a_key_no_configured_secret_reproduces_is_replaced_and_keeps_answering(
    settings, client, acme, eileen, issued, django_capture_on_commit_callbacks
):
    settings.AVTRZ_KEY_DERIVATION_SECRET, settings.AVTRZ_KEY_DERIVATION_SECRET_FALLBACKS = NEW, []  # OLD retired
    _an_hour_later()
    with django_capture_on_commit_callbacks(execute=True):
        connector = lookups.connector(acme)
    assert connector.key != issued
    assert _avatar(client, connector.key).status_code == 302
    assert _avatar(client, issued).status_code == 302  # the URLs already out answer for the grace period
    old = ApiKey.objects.for_key(issued)
    assert old.is_retiring
    assert keys.load_context(issued).expires_at == old.expires_at.timestamp()
    replaced = AuditEvent.objects.get(action=AuditEvent.Action.KEY_ROTATED)
    assert "no longer configured" in replaced.summary and NEW not in replaced.summary
    _an_hour_later()
    assert lookups.connector(acme).key == connector.key  # stable from now on
