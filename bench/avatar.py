"""Benchmark: `/v1/avatar` cache hits against a bare ASGI baseline, and the new-profile pipeline.

Run: `.venv/bin/python bench/avatar.py` (needs `wrk`: apt-get install wrk; and Redis on 127.0.0.1:6379).
Every server runs the same way (uvicorn, one worker, uvloop + httptools, no access log) on loopback,
one after the other, loaded by the same wrk command.

The baseline is a bare ASGI app that sends the response a hit sends (`bench/bare_asgi.py: same_as_hit`):
the same status, the same header names and values, copied from a hit received just before, and the same
empty body. The ratio so measures what our layers do for a hit (request id, fast path, bucket admission,
tally), not the cost of writing the headers the product's contract requires (the RateLimit headers among
them), which any server answering like us pays. The old baseline, the same 302 with three headers (and
no Content-Length, so sent chunked), is still printed for comparison.

Besides requests per second, each row gives the server process's CPU time per request (user + system,
from /proc): on a machine that other work loads, throughput swings with the cores left over, CPU time per
request much less, so "CPU ratio" (the baseline's CPU per request over the hit's) is the steadier figure.

Targets: hit throughput >= 50 % of the baseline (0.8 is the aim), hit p50 <= 2 ms, new profile <= 150 ms CPU.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, free_port, prepare, server_env, uvicorn  # noqa: E402


DURATION = os.environ.get("BENCH_DURATION", "10s")
CONNECTIONS = os.environ.get("BENCH_CONNECTIONS", "32")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process `pid` so far, or None where /proc does not tell."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, pid: int) -> dict[str, float]:
    cpu_before = cpu_seconds(pid)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu_after = cpu_seconds(pid)
    requests = int(re.search(r"(\d+) requests in", out).group(1))

    def latency(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    non_3xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency("50%"),
        "p99": latency("99%"),
        "errors": float(non_3xx.group(1)) if non_3xx else 0.0,
        "cpu_us": (cpu_after - cpu_before) / requests * 1e6 if cpu_before is not None and requests else math.nan,
    }


def hit_headers(url: str) -> list[tuple[str, str]]:
    """The headers of a cache hit at `url`, as the app wrote them (uvicorn's own Date and Server left out:
    it adds those to every response, the baseline's too)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}")
        response = connection.getresponse()
        response.read()
        headers = [(name.lower(), value) for name, value in response.getheaders()]
    finally:
        connection.close()
    if response.status != 302 or ("x-cache", "HIT") not in headers:
        raise SystemExit(f"bench: expected a cache hit (302, X-Cache: HIT) at {url}, got {response.status} {headers}")
    return [(name, value) for name, value in headers if name not in ("date", "server")]


def pipeline_figures() -> dict[str, float]:
    """Per-image CPU time of decode, detect, crop and encode of the five WEBP sizes (and a baseline)."""
    from avtrz.avatars import imaging

    data = (ROOT / "avtrz" / "avatars" / "demo" / "eileen-collins.jpg").read_bytes()

    def timed(work, rounds: int = 15) -> float:
        samples = []
        for _ in range(rounds):
            start = time.process_time()
            work()
            samples.append((time.process_time() - start) * 1000)
        return sorted(samples)[len(samples) // 2]

    def full() -> None:
        image = imaging.decode_image(data)
        imaging.render_avatar(image, box=imaging.square_crop_box(*image.size, imaging.detect_face(image)))

    def centre_only() -> None:
        imaging.render_avatar(imaging.decode_image(data))

    full()  # load the detector model once, outside the measurement
    return {"pipeline": timed(full), "baseline": timed(centre_only)}


def bare(app: str, env: dict[str, str]) -> dict[str, float]:
    port = free_port()
    server = uvicorn(f"bench.bare_asgi:{app}", port, env)
    try:
        return wrk(f"http://127.0.0.1:{port}/v1/avatar?key=x&username=eileen-collins&size=256", server.pid)
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = server_env(tmp, port)
        key = prepare(env)
        server = uvicorn("avtrz.asgi:application", port, env)
        try:
            url = f"http://127.0.0.1:{port}/v1/avatar?key={key}&username=eileen-collins&size=256"
            subprocess.run(["curl", "-s", "-o", "/dev/null", url], check=True)  # warm the caches
            headers = hit_headers(url)
            hit = wrk(url, server.pid)
        finally:
            server.terminate()
            server.wait()
    base = bare("same_as_hit", {"BENCH_HIT_HEADERS": json.dumps(headers)})
    old = bare("app", {})
    imaging_ms = pipeline_figures()

    def row(name: str, figures: dict[str, float], target: str = "-") -> tuple[str, ...]:
        return (
            name,
            f"{figures['rps']:.0f}",
            f"{figures['p50']:.2f}",
            f"{figures['p99']:.2f}",
            f"{figures['rps'] / base['rps']:.2f}",
            f"{figures['cpu_us']:.1f}",
            f"{base['cpu_us'] / figures['cpu_us']:.2f}",
            target,
        )

    rows = [
        row(f"bare ASGI, hit's {len(headers)} headers (baseline)", base),
        row("/v1/avatar cache hit", hit, ">= 0.50 (aim 0.80) and p50 <= 2 ms"),
        row("bare ASGI, 3 headers (old baseline)", old),
    ]
    print(f"\nHTTP on loopback, wrk -t2 -c{CONNECTIONS} -d{DURATION}, one uvicorn worker each")
    print(f"{'':40} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6} {'CPU us':>7} {'CPU ratio':>9}  target")
    for name, *cells in rows:
        print(
            f"{name:40} {cells[0]:>8} {cells[1]:>8} {cells[2]:>8} {cells[3]:>6} {cells[4]:>7} {cells[5]:>9}  {cells[6]}"
        )
    print(
        f"Against the old baseline the hit's ratio is {hit['rps'] / old['rps']:.2f} "
        f"(CPU ratio {old['cpu_us'] / hit['cpu_us']:.2f})"
    )
    print(f"The hit's headers (uvicorn adds Date and Server to every row): {', '.join(name for name, _ in headers)}")
    if hit["errors"]:
        print(f"  (!) {hit['errors']:.0f} non-2xx/3xx answers during the hit run")
    print("\nNew profile pipeline (decode, detect, crop, encode 5 WEBP sizes), median CPU ms per image")
    print(f"{'centre crop, no detection (baseline)':40} {imaging_ms['baseline']:8.1f}   1.00")
    ratio = imaging_ms["pipeline"] / imaging_ms["baseline"]
    print(f"{'full pipeline':40} {imaging_ms['pipeline']:8.1f} {ratio:6.2f}   target <= 150 ms")


if __name__ == "__main__":
    main()
