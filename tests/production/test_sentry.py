"""Sentry is wired when SENTRY_DSN is set, without personal data or keys, and costs nothing until an event."""

import json
import socket
import subprocess
import sys

from avtrz.lib.logs import sentry_before_send
from tests import services


PROBE = """
import django, json, sentry_sdk
django.setup()
client = sentry_sdk.get_client()
print(json.dumps({
    "active": client.is_active(),
    "pii": client.options["send_default_pii"],
    "integrations": sorted(client.integrations),
    "before_send": client.options["before_send"].__qualname__,
}))
"""


def test_settings_start_sentry_without_touching_the_network():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.2)
        dsn = f"http://public@127.0.0.1:{listener.getsockname()[1]}/1"
        result = subprocess.run(
            [sys.executable, "-c", PROBE],
            cwd=services.ROOT,
            env={
                "PATH": "/usr/bin:/bin",
                "DEBUG": "true",
                "SENTRY_DSN": dsn,
                "DJANGO_SETTINGS_MODULE": "avtrz.settings",
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        try:
            listener.accept()
            connected = True
        except TimeoutError:
            connected = False
    assert not connected
    probe = json.loads(result.stdout.splitlines()[-1])
    assert probe["active"] and probe["pii"] is False
    assert {"django", "celery"} <= set(probe["integrations"])
    assert probe["before_send"] == "sentry_before_send"


def test_events_are_scrubbed_of_keys_and_tokens():
    event = {
        "request": {
            "url": "https://avtrz.example/v1/avatar",
            "query_string": "key=sk_live_abcdefghijkl9Zq1&size=64",
            "headers": {"Authorization": "Bearer eyJhbGciOi.secret"},
        },
        "exception": {"values": [{"value": "no such key pk_live_abcdefgh7777"}]},
        "extra": {"sizes": [64, 128]},
    }
    scrubbed = sentry_before_send(event, {})
    assert scrubbed["request"]["query_string"] == "key=sk_live_…9Zq1&size=64"
    assert scrubbed["request"]["headers"]["Authorization"] == "Bearer [redacted]"
    assert scrubbed["exception"]["values"][0]["value"] == "no such key pk_live_…7777"
    assert scrubbed["extra"] == {"sizes": [64, 128]}
