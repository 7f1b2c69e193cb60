"""The baseline for bench/avatar.py: an ASGI app that answers the same 302 with no framework."""

HEADERS = [
    (b"location", b"http://127.0.0.1/img/0000000000000000000000000000000000000000000000000000000000000000.webp"),
    (b"cache-control", b"public, max-age=86400"),
    (b"etag", b'"0000000000000000000000000000000000000000000000000000000000000000"'),
]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 302, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b""})
