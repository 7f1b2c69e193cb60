"""CPU cost of the new-profile image pipeline, per step, against a plain-Pillow baseline.

    .venv/bin/python bench/imaging.py [--runs 30] [--cv-threads N] [--image PATH]

Pipeline (what a new profile costs): decode (untrusted-input checks, EXIF, mode; JPEGs at a reduced
scale, finer again when a small face needs it) + YuNet face detection (a second pass at 960 px
when nothing is found at 320 px) -> the framing boxes (tight 32-128, loose 256-512) -> a Lanczos
chain per box + five WEBP encodes. Baseline, measured in
the same run on the same photo: Pillow open + centre crop + the same five resizes and WEBP
encodes, no checks and no detection. Times are CPU (``time.process_time``, all threads of the
process), so OpenCV threads count. Target: the whole pipeline <= 150 ms CPU per image.
Exits 1 when the median misses the target.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a plain script from the repo, no install needed

import cv2  # noqa: E402
from PIL import Image  # noqa: E402

from avtrz.avatars import imaging  # noqa: E402


TARGET_MS = 150.0
SIZES = imaging.AVATAR_SIZES


def baseline(data: bytes) -> None:
    """What a naive implementation does: centre square, five independent resizes, WEBP."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    square = img.crop((left, top, left + side, top + side))
    for size in SIZES:
        square.resize((size, size), Image.Resampling.LANCZOS).save(io.BytesIO(), "WEBP", quality=82, method=4)


def pipeline(data: bytes, timings: dict[str, list[float]]) -> None:
    def step(name: str, work: Callable[[], object]) -> object:
        started = time.process_time()
        result = work()
        timings[name].append((time.process_time() - started) * 1000)
        return result

    img, face = step("decode + detect", lambda: imaging.decode_and_detect(data))
    boxes = step("framing boxes", lambda: imaging.framing_boxes(*img.size, face))
    step("resize + 5 WEBP", lambda: imaging.render_avatar(img, box=boxes, formats=("webp",)))


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--cv-threads", type=int, default=None, help="cv2.setNumThreads (default: OpenCV's)")
    parser.add_argument("--image", type=Path, default=ROOT / "tests" / "fixtures" / "images" / "face.jpg")
    args = parser.parse_args()
    if args.cv_threads is not None:
        cv2.setNumThreads(args.cv_threads)
    data = args.image.read_bytes()

    started = time.process_time()
    imaging.decode_and_detect(data)  # loads the model: a one-off per thread
    imaging.detect_face(Image.new("RGB", (1000, 1000)))  # and the second-pass model
    first_call = (time.process_time() - started) * 1000
    baseline(data)  # warm Pillow's codecs too

    steps = ("decode + detect", "framing boxes", "resize + 5 WEBP")
    timings: dict[str, list[float]] = {name: [] for name in (*steps, "pipeline", "baseline")}
    for _ in range(args.runs):
        before = time.process_time()
        pipeline(data, timings)
        timings["pipeline"].append((time.process_time() - before) * 1000)
        before = time.process_time()
        baseline(data)
        timings["baseline"].append((time.process_time() - before) * 1000)

    with Image.open(args.image) as probe:
        size = f"{probe.width}x{probe.height} {probe.format}, {len(data) / 1024:.0f} KiB"
    base = statistics.median(timings["baseline"])
    print(f"{args.image.name} ({size}); {args.runs} runs; OpenCV threads: {cv2.getNumThreads()}")
    print(f"first call (model load + one pipeline): {first_call:.1f} ms CPU, once per worker thread\n")
    print(f"{'step':<18}{'median ms':>11}{'p90 ms':>10}{'x baseline':>12}")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"{name:<18}{median:>11.1f}{p90(values):>10.1f}{median / base:>12.2f}")
    total = statistics.median(timings["pipeline"])
    verdict = "meets" if total <= TARGET_MS else "MISSES"
    print(f"\npipeline median {total:.1f} ms CPU {verdict} the {TARGET_MS:.0f} ms target")
    return 0 if total <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
