"""The baselines for bench/avatar.py: ASGI apps that answer `/v1/avatar` with a constant 302 and no framework.

`same_as_hit` (the baseline the target is measured against) sends the response a cache hit sends: the same
status, header names and values (so the same lengths) and the same empty body, read from BENCH_HIT_HEADERS
(a JSON list of [name, value] pairs) that bench/avatar.py fills from a hit it received just before. The
ratio then measures our work on the hit path, not the cost of the bytes the product's contract requires
(Location, Cache-Control, ETag, the RateLimit headers, X-Request-ID...): uvicorn checks and writes each
header for both alike.

`app` is the old, three-header baseline, still printed for comparison: no Content-Length, so uvicorn
answers it chunked (a second write per response for the terminating chunk).
"""

import json
import os


HEADERS = [
    (b"location", b"http://127.0.0.1/img/0000000000000000000000000000000000000000000000000000000000000000.webp"),
    (b"cache-control", b"public, max-age=86400"),
    (b"etag", b'"0000000000000000000000000000000000000000000000000000000000000000"'),
]
HIT_HEADERS = [
    (name.encode("latin-1"), value.encode("latin-1"))
    for name, value in json.loads(os.environ.get("BENCH_HIT_HEADERS", "[]"))
]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 302, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b""})


async def same_as_hit(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 302, "headers": HIT_HEADERS})
    await send({"type": "http.response.body", "body": b""})
