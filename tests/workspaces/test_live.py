"""Live updates: the dashboard's WebSocket (through the project's ASGI app) hears fresh meters after
metered requests are flushed, and connection changes; it refuses anyone who is not a member."""

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections

from accounts.connections import revoke_connection
from avtrz.asgi import application
from workspaces import usage
from workspaces.models import Membership
from workspaces.services import create_api_key


pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

ORIGIN = settings.PUBLIC_BASE_URL.encode()


@pytest_asyncio.fixture(autouse=True)
async def _close_worker_thread_connections():
    """The consumer's queries run in asgiref's worker thread, whose connection would outlive the test
    and keep the test database from being dropped."""
    yield
    await sync_to_async(connections.close_all)()


# Every test disconnects its socket, refused or not: the consumer's channel-layer receive then ends as
# it does when a browser leaves. Left running to the event loop's teardown, which cancels every task at
# once, a receive blocked in Redis (BZPOPMIN) could swallow the cancellation and wait for good: CI hung so.
def _socket(client, *, origin=ORIGIN, slug="acme"):
    headers = [(b"origin", origin)]
    if "sessionid" in client.cookies:
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return WebsocketCommunicator(application, f"/ws/w/{slug}/", headers=headers)


async def test_a_metered_request_reaches_open_pages(alice_client, alice, acme, eileen, client):
    raw = await sync_to_async(create_api_key)(actor=alice, workspace=acme, kind="secret", name="Server")
    socket = _socket(alice_client)
    connected, _ = await socket.connect()
    assert connected

    response = await sync_to_async(client.get)("/v1/avatar", {"username": "eileen-collins"}, headers={"x-api-key": raw})
    assert response.status_code == 302
    await sync_to_async(usage.flush_now)(force=True)

    message = await socket.receive_json_from(timeout=5)
    assert message["kind"] == "usage"
    assert message["data"]["requests"]["used"] == 1
    assert message["data"]["new_profiles"]["used"] == 1
    assert message["data"]["keys"] == 1
    await socket.disconnect()


async def test_connection_changes_reach_open_pages(alice_client, alice, acme, make_connection):
    connection, _token = await sync_to_async(make_connection)(alice, acme)
    socket = _socket(alice_client)
    assert (await socket.connect())[0]
    await sync_to_async(revoke_connection)(actor=alice, connection=connection)
    message = await socket.receive_json_from(timeout=5)
    assert message["kind"] == "connections"
    assert message["data"]["connections"] == 0
    await socket.disconnect()


async def test_outsiders_are_refused(charlie_client, acme):
    socket = _socket(charlie_client)
    connected, _ = await socket.connect()
    assert not connected
    await socket.disconnect()


async def test_anonymous_visitors_are_refused(client, acme):
    socket = _socket(client)
    connected, _ = await socket.connect()
    assert not connected
    await socket.disconnect()


async def test_another_sites_origin_is_refused(alice_client):
    socket = _socket(alice_client, origin=b"https://evil.example")
    connected, _ = await socket.connect()
    assert not connected
    await socket.disconnect()


async def test_a_removed_member_stops_hearing(bob_client, bob, acme, alice, eileen, client):
    socket = _socket(bob_client)
    assert (await socket.connect())[0]
    await sync_to_async(Membership.objects.filter(user=bob).delete)()
    raw = await sync_to_async(create_api_key)(actor=alice, workspace=acme, kind="secret", name="Server")
    await sync_to_async(client.get)("/v1/avatar", {"username": "eileen-collins"}, headers={"x-api-key": raw})
    await sync_to_async(usage.flush_now)(force=True)
    assert (await socket.receive_output(timeout=5))["type"] == "websocket.close"
    await socket.disconnect()
