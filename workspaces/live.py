"""The dashboard's live numbers: one snapshot of a workspace's meters and counts, served as JSON
(`usage.json`, the polling fallback) and pushed to open pages over WebSockets when they change.

Pushes go to the channel-layer group of the workspace; `workspaces.consumers` joins sockets to it.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver
from redis.exceptions import RedisError

from accounts.connections import list_connections
from accounts.models import Connection
from avtrz.lib.logs import OutageLog
from workspaces import usage
from workspaces.models import UsagePeriod, Workspace
from workspaces.signals import usage_changed


log = logging.getLogger(__name__)
_channel_layer_outage = OutageLog(log, "live dashboard updates", "open pages fall back to polling until it is back")


def group_name(workspace_id: int) -> str:
    return f"workspace-{workspace_id}"


def _meter(used: int, limit: int) -> dict:
    percent = min(100, used * 100 // limit) if limit else 100
    return {"used": used, "limit": limit, "percent": percent, "level": level(percent)}


def level(percent: int) -> str:
    """How worried the meter should look: the same thresholds the owners are emailed at."""
    return "full" if percent >= 100 else "high" if percent >= 80 else "ok"


def snapshot(workspace: Workspace, period: UsagePeriod | None = None) -> dict:
    """The workspace's numbers now: the live request count, not just what was last written."""
    period = period or usage.current_period(workspace)
    return {
        "plan": workspace.plan.name,
        "requests": _meter(usage.requests_used(period.pk), period.requests_limit),
        "new_profiles": _meter(period.avatar_new_profiles, period.new_profiles_limit),
        "resets_at": period.ends_at.isoformat(),
        "resets_on": f"{period.ends_at.day} {period.ends_at:%b %Y}",
        "keys": workspace.api_keys.active().count(),
        "connections": list_connections(workspace).count(),
    }


def push(workspace: Workspace, kind: str, data: dict) -> None:
    """Send to every open dashboard page of the workspace. Best effort: a page that misses a push
    catches up on its next poll, so a channel-layer hiccup must not fail the caller."""
    try:
        layer = get_channel_layer()
        assert layer is not None  # settings always configure CHANNEL_LAYERS
        async_to_sync(layer.group_send)(
            group_name(workspace.pk), {"type": "workspace.update", "kind": kind, "data": data}
        )
    except (RedisError, OSError) as exc:  # the channel layer's Redis is away or stalls: pages poll meanwhile
        _channel_layer_outage.failed(exc)
    except Exception:
        log.exception("live update for workspace %s failed", workspace.pk)
    else:
        _channel_layer_outage.recovered()


@receiver(usage_changed)
def usage_written(sender, *, workspace: Workspace, period: UsagePeriod, **kwargs) -> None:
    """After the flusher wrote usage: push the meters."""
    push(workspace, "usage", snapshot(workspace, period))


@receiver(post_save, sender=Connection)
def connection_saved(sender, instance: Connection, **kwargs) -> None:
    """A connection was made, re-authorized or revoked: refresh open connection lists once committed."""
    workspace_id = instance.workspace_id

    def send() -> None:
        workspace = Workspace.objects.select_related("plan").filter(pk=workspace_id).first()
        if workspace is not None:
            push(workspace, "connections", snapshot(workspace))

    transaction.on_commit(send)
