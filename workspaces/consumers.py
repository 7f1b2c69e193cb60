"""The dashboard's WebSocket: pushes a workspace's fresh numbers to its open pages (see `workspaces.live`)."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from workspaces import live
from workspaces.models import Membership


class WorkspaceConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/w/<slug>/`: members of the workspace only, by their session; anyone else is closed."""

    group: str | None = None

    async def connect(self) -> None:
        workspace_id = await self._membership_workspace_id()
        if workspace_id is None:
            await self.close()
            return
        self.workspace_id = workspace_id
        self.group = live.group_name(workspace_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def workspace_update(self, event: dict) -> None:
        # Checked on every push, not only at connect: a member removed while the page is open stops hearing.
        if await self._membership_workspace_id() != self.workspace_id:
            await self.close()
            return
        await self.send_json({"kind": event["kind"], "data": event["data"]})

    @database_sync_to_async
    def _membership_workspace_id(self) -> int | None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return None
        return (
            Membership.objects.filter(user_id=user.pk, workspace__slug=self.scope["url_route"]["kwargs"]["slug"])
            .values_list("workspace_id", flat=True)
            .first()
        )
