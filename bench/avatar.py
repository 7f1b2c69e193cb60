"""Benchmark: `/v1/avatar` cache hits against a bare ASGI baseline, and the new-profile pipeline.

Run: `.venv/bin/python bench/avatar.py` (needs `wrk`: apt-get install wrk; and Redis on 127.0.0.1:6379).
Both servers run the same way (uvicorn, one worker, uvloop + httptools, no access log) on loopback,
one after the other, loaded by the same wrk command. Targets: hit throughput >= 50 % of the baseline,
hit p50 <= 2 ms, new profile <= 150 ms CPU.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, free_port, prepare, server_env, uvicorn  # noqa: E402


DURATION = os.environ.get("BENCH_DURATION", "10s")
CONNECTIONS = os.environ.get("BENCH_CONNECTIONS", "32")


def wrk(url: str) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def latency(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    non_3xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency("50%"),
        "p99": latency("99%"),
        "errors": float(non_3xx.group(1)) if non_3xx else 0.0,
    }


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


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = server_env(tmp, port)
        key = prepare(env)
        server = uvicorn("avtrz.asgi:application", port, env)
        try:
            url = f"http://127.0.0.1:{port}/v1/avatar?key={key}&username=eileen-collins&size=256"
            subprocess.run(["curl", "-s", "-o", "/dev/null", url], check=True)  # warm the caches
            hit = wrk(url)
        finally:
            server.terminate()
            server.wait()
    port = free_port()
    bare = uvicorn("bench.bare_asgi:app", port, {})
    try:
        base = wrk(f"http://127.0.0.1:{port}/v1/avatar?key=x&username=eileen-collins&size=256")
    finally:
        bare.terminate()
        bare.wait()
    imaging_ms = pipeline_figures()

    rows = [
        ("bare ASGI 302 (baseline)", f"{base['rps']:.0f}", f"{base['p50']:.2f}", f"{base['p99']:.2f}", "1.00", "-"),
        (
            "/v1/avatar cache hit",
            f"{hit['rps']:.0f}",
            f"{hit['p50']:.2f}",
            f"{hit['p99']:.2f}",
            f"{hit['rps'] / base['rps']:.2f}",
            ">= 0.50 and p50 <= 2 ms",
        ),
    ]
    print(f"\nHTTP on loopback, wrk -t2 -c{CONNECTIONS} -d{DURATION}, one uvicorn worker each")
    print(f"{'':28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6}  target")
    for name, *cells in rows:
        print(f"{name:28} {cells[0]:>8} {cells[1]:>8} {cells[2]:>8} {cells[3]:>6}  {cells[4]}")
    if hit["errors"]:
        print(f"  (!) {hit['errors']:.0f} non-2xx/3xx answers during the hit run")
    print("\nNew profile pipeline (decode, detect, crop, encode 5 WEBP sizes), median CPU ms per image")
    print(f"{'centre crop, no detection (baseline)':40} {imaging_ms['baseline']:8.1f}   1.00")
    ratio = imaging_ms["pipeline"] / imaging_ms["baseline"]
    print(f"{'full pipeline':40} {imaging_ms['pipeline']:8.1f} {ratio:6.2f}   target <= 150 ms")


if __name__ == "__main__":
    main()
