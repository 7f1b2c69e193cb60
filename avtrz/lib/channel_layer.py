"""The Redis channel layer, with a receive that ends when it is cancelled.

When a page's WebSocket goes, Channels cancels its consumer's channel-layer receive once and waits for it
(`channels.utils.await_many_dispatch`). On Python 3.11 that one cancellation can be lost: redis-py sends
each command under `asyncio.wait_for` (when it has a socket timeout, as ours does), and 3.11's `wait_for`
returns the inner result instead of raising when it is cancelled just after the inner send finished
(`except CancelledError: if fut.done(): return fut.result()`; bpo-42130, gone with 3.12's `wait_for`). The
receive then goes on in `receive_single`'s loop, a BZPOPMIN every 5 s for good, holding the process's
receive lock: the consumer never ends, and uvicorn's graceful shutdown waits on it forever (so the usage
flush at shutdown never runs). 33 pages coming and going on a served instance hit it every time
(tests/workspaces/test_live_served.py).

Here the layer's receive runs in a task of its own, and a cancelled receive cancels that task again until
it has ended, so a lost cancellation costs a moment rather than the process.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels_redis.core import RedisChannelLayer


# How long a cancelled receive may take to end before it is cancelled again. Ending takes one step of
# the event loop; a lost cancellation shows as a receive still running after this.
RECANCEL_AFTER_S = 0.5


class CancellableRedisChannelLayer(RedisChannelLayer):
    async def receive(self, channel: str) -> Any:
        task = asyncio.ensure_future(super().receive(channel))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            while not task.done():
                task.cancel()
                try:
                    await asyncio.wait({task}, timeout=RECANCEL_AFTER_S)
                except asyncio.CancelledError:  # cancelled again meanwhile: it is re-raised below all the same
                    pass
            if not task.cancelled():
                task.exception()  # retrieved: a message or error that came too late is not logged as lost
            raise
