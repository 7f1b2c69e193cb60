"""AI connections: what the consent screen creates, the dashboard lists and revokes, and the MCP
server resolves a bearer token to.

Multi-model writes run in one transaction each, with their audit row.

The MCP endpoint's token check is cached (`token_grant`): a verified token's workspace and expiry
sit in the hot cache under the token's SHA-256 digest, so a warm call touches no database. Every
way a token stops working drops that entry on every worker once its transaction commits: deleting
the access token (DOT's revoke endpoint, refresh-token rotation, a replayed code's family, the
dashboard's and the admin's revoke, member removal: they all delete it), deleting its connection
(the workspace, the user or the client deleted), deactivating its user, and editing the token
(saved, as the admin does). Expiry is read from the cached expiry time.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import QuerySet
from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver
from django.utils import timezone
from oauth2_provider.models import (
    AbstractAccessToken,
    AbstractApplication,
    AbstractGrant,
    get_access_token_model,
    get_application_model,
    get_grant_model,
    get_refresh_token_model,
)

from accounts.models import Connection, ConnectionLink, ConnectionQuerySet, User
from accounts.oauth import mcp_resource_url
from avtrz.lib import hotcache
from workspaces.models import AuditEvent, Membership, Workspace


AccessToken = get_access_token_model()
Application = get_application_model()
Grant = get_grant_model()
RefreshToken = get_refresh_token_model()


def _audit(connection: Connection, action: str, verb: str, *, actor: User) -> None:
    AuditEvent.objects.create(
        workspace=connection.workspace,
        actor=actor,
        action=action,
        summary=f"{actor} {verb} {connection.application} for {connection.user}",
        data={"connection": str(connection.uid), "client_id": connection.application.client_id},
    )


@transaction.atomic
def record_consent(*, grant: AbstractGrant, workspace: Workspace) -> Connection:
    """Bind a freshly issued authorization code to the user's connection for ``workspace``.

    The first consent for a (user, client, workspace) creates the connection; a later one
    (re-authorizing, or reconnecting after a revocation) reactivates it with the new scopes. Each
    records the redirect URI the code is sent to, which is what the connection is recognised by.
    """
    connection, created = Connection.objects.select_for_update().get_or_create(
        user=grant.user,
        application=grant.application,
        workspace=workspace,
        defaults={"scope": grant.scope, "redirect_uri": grant.redirect_uri},
    )
    reconnected = not created and connection.revoked_at is not None
    if not created:
        connection.scope = grant.scope
        connection.redirect_uri = grant.redirect_uri
        connection.revoked_at = None
        connection.save(update_fields=["scope", "redirect_uri", "revoked_at"])
    if created or reconnected:
        _audit(connection, AuditEvent.Action.CONNECTION_CREATED, "connected", actor=grant.user)
    ConnectionLink.objects.create(connection=connection, grant=grant)
    return connection


def connection_for_grant(grant_code: str, application: AbstractApplication) -> Connection | None:
    link = (
        ConnectionLink.objects.select_related("connection")
        .filter(grant__code=grant_code, grant__application=application)
        .first()
    )
    return link.connection if link else None


def link_token(connection: Connection, *, access_token=None, refresh_token=None, code_digest: str = "") -> None:
    ConnectionLink.objects.create(
        connection=connection, access_token=access_token, refresh_token=refresh_token, code_digest=code_digest
    )


def revoke_tokens_from_code(code_digest: str) -> int:
    """Revoke every token issued from one authorization code: the pair of its exchange and all the
    rotations since (the same refresh token family). For a replayed code, whose tokens may have
    gone to an attacker (RFC 6749 §4.1.2). Returns how many credentials were revoked."""
    links = ConnectionLink.objects.filter(code_digest=code_digest).select_related("refresh_token")
    families = {link.refresh_token.token_family for link in links if link.refresh_token is not None}
    live = RefreshToken.objects.filter(token_family__in=families, revoked__isnull=True).count()
    for family in families:
        RefreshToken.revoke_family(family)
    # The exchange's own access token, when no refresh token came with it ("Stay connected" off).
    first = AccessToken.objects.filter(connection_link__code_digest=code_digest)
    unrefreshable = first.count()
    first.delete()
    return live + unrefreshable


def _listing(queryset: ConnectionQuerySet) -> QuerySet[Connection]:
    return queryset.active().select_related("user", "workspace", "application").order_by("-created_at")


def list_connections(workspace: Workspace) -> QuerySet[Connection]:
    """The workspace's active connections, newest first, for the dashboard."""
    return _listing(Connection.objects.filter(workspace=workspace))


@dataclass
class ConnectionGroup:
    """Connections the dashboard shows as one app: the one used last first, the others after it."""

    connections: list[Connection] = field(default_factory=list)

    @property
    def latest(self) -> Connection:
        return self.connections[0]

    @property
    def older(self) -> list[Connection]:
        return self.connections[1:]


def _group_key(connection: Connection) -> tuple:
    # Only the same person's re-registrations of what is, by every sign we have, the same app: the
    # name it registered with and where its codes go. Without a recorded redirect URI nothing
    # says they are the same app, so such a connection stands alone.
    if not connection.redirect_host:
        return ("alone", connection.pk)
    return (connection.user_id, connection.application.name.strip().casefold(), connection.redirect_host)


def _activity(connection: Connection):
    return connection.last_used_at or connection.created_at


def _used_last_first(connection: Connection) -> tuple:
    # A connection that was used outranks one that never was (an abandoned attempt), however new.
    return (connection.last_used_at is not None, _activity(connection), connection.created_at, connection.pk)


def group_connections(connections) -> list[ConnectionGroup]:
    """Group re-registrations of one app by one person (each reconnect of Claude or the MCP Inspector
    registers a new client): same user, same client name, same redirect host. Within a group the
    connection used last comes first (then the newest never used); groups are ordered by their most
    recent activity, a use or a new connection. Grouping only changes how they are shown: every
    connection stays listed and revocable on its own."""
    groups: dict[tuple, ConnectionGroup] = {}
    for connection in connections:
        groups.setdefault(_group_key(connection), ConnectionGroup()).connections.append(connection)
    for group in groups.values():
        group.connections.sort(key=_used_last_first, reverse=True)
    return sorted(groups.values(), key=lambda g: (max(_activity(c) for c in g.connections), g.latest.pk), reverse=True)


def last_revoked(user: User, application: AbstractApplication, redirect_uri: str) -> Connection | None:
    """The user's connection of this app that was revoked, when it is the latest one and none is active:
    the same client, or a re-registration of it (same name, same redirect URI, as the dashboard groups
    them). For the consent screen's "you revoked this connection on …"."""
    candidates = (
        Connection.objects.filter(user=user)
        .filter(
            models.Q(application=application) | models.Q(application__name=application.name, redirect_uri=redirect_uri)
        )
        .select_related("workspace")
        .order_by("-revoked_at")
    )
    if any(c.revoked_at is None for c in candidates):
        return None
    return candidates.first()


def revoked_by(connection: Connection) -> User | None:
    """Who revoked ``connection`` last, from the audit log (None when Avtrz did, or unknown)."""
    event = (
        AuditEvent.objects.filter(
            workspace_id=connection.workspace_id,
            action=AuditEvent.Action.CONNECTION_REVOKED,
            data__connection=str(connection.uid),
        )
        .select_related("actor")
        .order_by("-pk")
        .first()
    )
    return event.actor if event else None


def can_revoke(*, actor: User, connection: Connection) -> bool:
    """The user who connected, the workspace's owners and admins, and support staff may revoke.

    Staff need the change permission on connections, which the support admin's revoke action asks for.
    """
    if actor.pk == connection.user_id or actor.is_staff and actor.has_perm("accounts.change_connection"):
        return True
    membership = Membership.objects.filter(user=actor, workspace_id=connection.workspace_id).first()
    return membership is not None and membership.can_manage


def _revoke(connection: Connection, now) -> None:
    """Stop a locked, active connection's access tokens, refresh tokens and pending codes at once."""
    # Refresh tokens are marked revoked rather than deleted, as DOT's own revocation does, so a
    # replay is recognised as reuse instead of looking like an unknown token.
    RefreshToken.objects.filter(connection_link__connection=connection, revoked__isnull=True).update(
        revoked=now, updated=now
    )
    AccessToken.objects.filter(connection_link__connection=connection).delete()
    Grant.objects.filter(connection_link__connection=connection).delete()
    connection.revoked_at = now
    connection.save(update_fields=["revoked_at"])


@transaction.atomic
def revoke_connection(*, actor: User, connection: Connection) -> None:
    """Revoke a connection: its access tokens, refresh tokens and pending codes stop working at once."""
    if not can_revoke(actor=actor, connection=connection):
        raise PermissionDenied("Only the person who connected it, or a workspace owner or admin, can revoke this.")
    connection = Connection.objects.select_for_update().get(pk=connection.pk)
    if connection.revoked_at is not None:
        return
    _revoke(connection, timezone.now())
    _audit(connection, AuditEvent.Action.CONNECTION_REVOKED, "revoked", actor=actor)


@transaction.atomic
def revoke_member_connections(*, user_id: int, workspace_id: int) -> list[Connection]:
    """Revoke every active connection ``user_id`` made to ``workspace_id``, because they are no longer
    a member of it (removed, or left). Returns the connections revoked; the caller audits.

    No permission check: the caller decided the membership ends. Without this the tokens would stop
    at the MCP endpoint (it checks membership) but refresh tokens would keep minting new ones, and a
    returning member would find the old connection live again.
    """
    revoked = list(
        Connection.objects.select_for_update(of=("self",))
        .active()
        .filter(user_id=user_id, workspace_id=workspace_id)
        .select_related("application")
        .order_by("pk")
    )
    now = timezone.now()
    for connection in revoked:
        _revoke(connection, now)
    return revoked


@receiver(post_delete, sender=Membership, dispatch_uid="accounts.revoke-former-member")
def revoke_on_membership_deleted(sender, instance: Membership, origin=None, **kwargs) -> None:
    """A former member's connections to the workspace die with the membership, however it was deleted
    (the support admin, a shell): revoke what the services did not already (they revoke first
    themselves, to count them in their audit row), and audit it.

    Skipped when the membership goes with its workspace or user: their connections are deleted too.
    """
    membership = instance
    if not (isinstance(origin, Membership) or isinstance(origin, QuerySet) and origin.model is Membership):
        return
    revoked = revoke_member_connections(user_id=membership.user_id, workspace_id=membership.workspace_id)
    if revoked:
        AuditEvent.objects.create(
            workspace_id=membership.workspace_id,
            action=AuditEvent.Action.CONNECTION_REVOKED,
            summary=f"Avtrz revoked {_count(revoked)} of {membership.user}, no longer a member"[:255],
            data={"user": membership.user.email, "connections": [str(c.uid) for c in revoked]},
        )


def _count(connections: list[Connection]) -> str:
    return f"{len(connections)} AI connection{'' if len(connections) == 1 else 's'}"


def workspace_for_access_token(token: str) -> tuple[AbstractAccessToken, Workspace] | None:
    """The access token and the workspace it acts for, if ``token`` may call the MCP server now.

    None when the token is unknown, expired or revoked, was issued for another resource, or its
    user is no longer active or no longer a member of the workspace. Two queries, uncached (the MCP
    endpoint asks ``token_grant``); plain sync code, kept off the event loop.
    """
    checksum = _token_checksum(token)
    access_token = (
        AccessToken.objects.select_related("user", "application", "connection_link__connection__workspace__plan")
        .filter(
            token_checksum=checksum,
            connection_link__isnull=False,
            connection_link__connection__revoked_at__isnull=True,
        )
        .first()
    )
    if access_token is None or access_token.is_expired() or mcp_resource_url() not in access_token.resource:
        return None
    connection = access_token.connection_link.connection
    if not may_act_for(access_token.user, connection):
        return None
    return access_token, connection.workspace


def may_act_for(user: User, connection: Connection) -> bool:
    """Whether ``user``'s tokens may still act for ``connection``'s workspace: the user is active and
    still a member of it. Asked of every access token the MCP endpoint verifies and every refresh."""
    return user.is_active and Membership.objects.filter(user_id=user.pk, workspace_id=connection.workspace_id).exists()


GRANT_CACHE_PREFIX = "mcp:token:"
# A cached check is redone against the database at least this often, whatever the token's expiry.
GRANT_CACHE_MAX_TTL = 3600


@dataclass(frozen=True)
class TokenGrant:
    """A verified MCP access token as the endpoint caches it: the workspace it acts for, and until when."""

    workspace: Workspace
    expires_at: float  # epoch seconds

    def is_live(self, now: float) -> bool:
        return now < self.expires_at


def _grant_cache_key(checksum: str) -> str:
    return GRANT_CACHE_PREFIX + checksum


def _token_checksum(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _caches_tokens() -> bool:
    # Only where every process hears a revocation (Redis and its invalidation channel): an in-process
    # cache would keep a token working in one process after another one (the admin, a shell) revoked it.
    return bool(settings.REDIS_URL)


def cached_token_grant(token: str, *, local_only: bool = False) -> TokenGrant | None:
    """The cached grant of ``token``, expired or not (the caller compares ``expires_at`` with its
    clock); None when nothing is cached. ``local_only``: from this process's memory alone, no network
    I/O (for the event loop, see ``hotcache.get``)."""
    if not _caches_tokens():
        return None
    found = hotcache.get(_grant_cache_key(_token_checksum(token)), local_only=local_only)
    return found if isinstance(found, TokenGrant) else None


def token_grant(token: str) -> TokenGrant | None:
    """What ``token`` may do at the MCP endpoint: from the hot cache, else checked in the database
    (``workspace_for_access_token``) and then cached until it expires. None when it may not."""
    if not _caches_tokens():
        return _verified_grant(token)
    key = _grant_cache_key(_token_checksum(token))
    cached, version = hotcache.read(key)
    if isinstance(cached, TokenGrant):
        return cached
    grant = _verified_grant(token)
    if grant is not None:
        ttl = min(GRANT_CACHE_MAX_TTL, grant.expires_at - time.time())
        if ttl >= 1:
            # Not written if a revocation dropped the key since the read: it would bring the token back.
            hotcache.set_if_current(key, grant, ttl, version)
    return grant


def _verified_grant(token: str) -> TokenGrant | None:
    found = workspace_for_access_token(token)
    if found is None:
        return None
    access_token, workspace = found
    return TokenGrant(workspace=workspace, expires_at=access_token.expires.timestamp())


def forget_token_grants(checksums: Iterable[str]) -> None:
    """Drop the cached checks of these tokens (SHA-256 digests) on every worker, once the current
    transaction commits: before that, a worker re-reading the database would still find them live."""
    keys = [_grant_cache_key(checksum) for checksum in checksums]
    if keys and _caches_tokens():
        transaction.on_commit(lambda: hotcache.delete_many(keys))


@receiver(post_delete, sender=AccessToken, dispatch_uid="accounts.forget-deleted-token")
def _access_token_deleted(sender, instance, **kwargs) -> None:
    # Every revocation deletes the access token: DOT's revoke endpoint and rotation, revoke_family,
    # and our own _revoke and revoke_tokens_from_code.
    forget_token_grants([instance.token_checksum])


@receiver(post_save, sender=AccessToken, dispatch_uid="accounts.forget-edited-token")
def _access_token_edited(sender, instance, created, **kwargs) -> None:
    # An edit (support changing its expiry or audience in the admin) is checked again.
    if not created:
        forget_token_grants([instance.token_checksum])


@receiver(pre_delete, sender=Connection, dispatch_uid="accounts.forget-deleted-connection-tokens")
def _connection_deleted(sender, instance, **kwargs) -> None:
    # Deleting a workspace, a user or a client deletes its connections, and with them the token
    # links, while DOT's access token rows may outlive them unbound.
    forget_token_grants(
        AccessToken.objects.filter(connection_link__connection=instance).values_list("token_checksum", flat=True)
    )


@receiver(post_save, sender=User, dispatch_uid="accounts.forget-deactivated-user-tokens")
def _user_saved(sender, instance, created, **kwargs) -> None:
    if not created and not instance.is_active:
        forget_token_grants(AccessToken.objects.filter(user=instance).values_list("token_checksum", flat=True))


def clear_abandoned_registrations(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Delete dynamically registered clients nobody ever authorized, once ``older_than`` has passed.

    Clients such as Claude register afresh for every connection attempt, so abandoned attempts
    pile up. A client with a connection, even a revoked one, is history and is kept.
    Returns how many were deleted.
    """
    abandoned = Application.objects.filter(
        registration_source=Application.RegistrationSource.DCR,
        created__lt=timezone.now() - older_than,
        avtrz_connections__isnull=True,
        grant__isnull=True,
    )
    _total, by_model = abandoned.delete()
    return by_model.get(Application._meta.label, 0)
