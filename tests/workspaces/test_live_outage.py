"""A dashboard push while the channel layer's Redis is away: the pages fall back to polling and the log
says so once, then once a minute, then once when Redis is back - not a traceback per flush (twice a
second on a busy worker)."""

import logging
import socket

import pytest
from django.test import override_settings

from avtrz.lib.logs import OutageLog
from workspaces import live


pytestmark = pytest.mark.django_db


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_layer_at(port: int) -> dict:
    config = {"hosts": [{"address": f"redis://127.0.0.1:{port}/0", "socket_connect_timeout": 1}]}
    return {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": config}}


def test_pushes_during_an_outage_log_it_once_a_minute_and_its_end(acme, monkeypatch, caplog):
    now = [1_000.0]
    outage = OutageLog(live.log, "live dashboard updates", "pages poll", clock=lambda: now[0])
    monkeypatch.setattr(live, "_channel_layer_outage", outage)
    caplog.set_level(logging.WARNING, logger=live.log.name)

    with override_settings(CHANNEL_LAYERS=_redis_layer_at(_closed_port())):
        for _ in range(5):  # five flushes in a row, none of them raises to the flusher
            live.push(acme, "usage", {"requests": 1})
        assert caplog.messages == [caplog.messages[0]]
        assert "live dashboard updates cannot reach Redis" in caplog.messages[0]
        assert not any(record.exc_info for record in caplog.records)
        now[0] += 65
        live.push(acme, "usage", {"requests": 2})
        assert len(caplog.messages) == 2
        assert "still cannot reach Redis after 65 s (5 failed calls since the last report)" in caplog.messages[1]

    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}):
        live.push(acme, "usage", {"requests": 3})
        live.push(acme, "usage", {"requests": 4})
    assert len(caplog.messages) == 3 and "live dashboard updates reach Redis again after 65 s" in caplog.messages[2]
