"""Does the avatar frame the face? The new framing rule beside today's (largest square), checked by an
independent detector on a generated photo set.

    .venv/bin/python bench/framing.py [--save DIR]

Photo set: built by this script from the one real portrait the repository ships
(``tests/fixtures/images/face.jpg``, NASA's public-domain portrait of Eileen Collins, as in
scikit-image's ``astronaut.png``) pasted, scaled, cut and repeated on drawn canvases (gradients,
noise, shapes): a small face in a square photo, a scene, a face far off-centre on a large noisy
canvas, two faces, no face, faces touching an edge, a very large photo, a close-up, a banner and a
tall photo. Each photo goes through the pipeline (decode, YuNet detection, crop, render) twice in
the same run: with ``imaging.framing_boxes`` (new) and with ``imaging.square_crop_box`` for every
size (today's rule, the baseline).

Check: OpenCV's Haar cascade (``haarcascade_frontalface_alt2.xml`` from opencv-python-headless,
not the YuNet model the pipeline uses) looks for the face in the 128 px (tight) and 512 px (loose)
avatars and reports its height as a share of the side and its centre. A rendition meets the rule
when the face is found, centred horizontally (centre x 38-62 % of the side), its centre in the
upper-middle band (30-60 % down: eyes in the upper half), and its height about 35-50 % of the side
at 128 px (32-53 %) and 25-53 % at 512 px (looser, and loosened further by the 2x upscale limit).
The upper bound is waived when the crop is already the whole short side of the photo (a close-up
keeps today's behaviour: there is nothing to zoom out to). A photo without a face meets the rule
when the avatar is the centre square. Haar boxes run forehead to chin and measure ~0.9x YuNet's.

``--save DIR`` writes each photo's 128 and 512 px avatars (new and today) as one PNG per photo.
Exits 1 if the new rule meets the rule on fewer photos than today's.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a plain script from the repo, no install needed

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

from avtrz.avatars import imaging  # noqa: E402


PORTRAIT = ROOT / "tests" / "fixtures" / "images" / "face.jpg"
CHECK_SIZES = (128, 512)
SHARE_BOUNDS = {128: (0.32, 0.53), 512: (0.25, 0.53)}
CENTRE_X = (0.38, 0.62)
CENTRE_Y = (0.30, 0.60)


# --- the photo set ---


def portrait(side: int) -> Image.Image:
    with Image.open(PORTRAIT) as img:
        return img.convert("RGB").resize((side, side), Image.Resampling.LANCZOS)


def noise(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 200, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(base, "RGB").resize((width, height), Image.Resampling.BILINEAR)
    grain = rng.integers(-25, 25, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.int16) + grain, 0, 255).astype(np.uint8), "RGB")


def gradient(width: int, height: int, top=(200, 210, 225), bottom=(120, 125, 140)) -> Image.Image:
    t = np.linspace(0, 1, height)[:, None, None]
    rows = (1 - t) * np.array(top) + t * np.array(bottom)
    return Image.fromarray(np.repeat(rows, width, axis=1).astype(np.uint8), "RGB")


def scene(width: int, height: int) -> Image.Image:
    """A drawn room: wall, floor, a window and a plant, no face."""
    img = gradient(width, height)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, int(height * 0.7), width, height), fill=(120, 90, 60))
    draw.rectangle((int(width * 0.08), int(height * 0.15), int(width * 0.35), int(height * 0.5)), fill=(170, 200, 230))
    draw.ellipse((int(width * 0.75), int(height * 0.45), int(width * 0.9), int(height * 0.72)), fill=(40, 110, 50))
    return img.filter(ImageFilter.GaussianBlur(2))


def photo_set() -> list[tuple[str, Image.Image]]:
    """(name, photo); every photo shows the portrait's face except the one named "no face"."""
    photos = []
    with Image.open(PORTRAIT) as img:
        photos.append(("portrait 800 px (face 22 %)", img.convert("RGB")))
    canvas = scene(1200, 1200)
    canvas.paste(portrait(360), (420, 600))
    photos.append(("small face in a square scene", canvas))
    canvas = noise(3000, 2000, seed=1)
    canvas.paste(portrait(500), (2450, 80))
    photos.append(("far off-centre, large noisy canvas", canvas))
    canvas = scene(1600, 1000)
    canvas.paste(portrait(560), (620, 300))
    canvas.paste(portrait(300).transpose(Image.Transpose.FLIP_LEFT_RIGHT), (80, 420))
    photos.append(("two faces (large central, small left)", canvas))
    photos.append(("no face (drawn room)", scene(1000, 700)))
    with Image.open(PORTRAIT) as img:
        photos.append(("face touching the top edge", img.convert("RGB").crop((0, 110, 800, 800))))
    canvas = gradient(1400, 800)
    canvas.paste(portrait(600).crop((200, 0, 600, 600)), (0, 200))
    photos.append(("face touching the left edge", canvas))
    canvas = gradient(1400, 800)
    canvas.paste(portrait(600).crop((0, 0, 420, 600)), (980, 200))
    photos.append(("face touching the right edge", canvas))
    canvas = noise(6000, 4000, seed=2)
    canvas.paste(portrait(1400), (3000, 1300))
    photos.append(("very large photo 6000x4000", canvas))
    with Image.open(PORTRAIT) as img:
        photos.append(("close-up (face 55 %)", img.convert("RGB").crop((190, 30, 510, 350))))
    canvas = gradient(1800, 600)
    canvas.paste(portrait(600), (1150, 0))
    photos.append(("banner 1800x600", canvas))
    canvas = gradient(700, 1400)
    canvas.paste(portrait(700), (0, 0))
    photos.append(("tall photo 700x1400", canvas))
    canvas = scene(2000, 2000)
    canvas.paste(portrait(220), (900, 1000))
    photos.append(("tiny face (48 px) in 2000 px", canvas))
    return photos


def encode(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


# --- the check ---


@dataclass
class Check:
    found: bool
    share: float = 0.0
    cx: float = 0.0
    cy: float = 0.0
    ok: bool = False


_cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_alt2.xml")


def haar(avatar: bytes) -> tuple[float, float, float] | None:
    """(height share, centre x, centre y) of the largest Haar face in a square avatar, or None."""
    grey = np.asarray(Image.open(io.BytesIO(avatar)).convert("L"))
    side = grey.shape[0]
    faces = _cascade.detectMultiScale(grey, scaleFactor=1.05, minNeighbors=5, minSize=(20, 20))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    return h / side, (x + w / 2) / side, (y + h / 2) / side


def check(avatar: bytes, size: int, *, whole_short_side: bool, has_face: bool, centre_square: bool) -> Check:
    found = haar(avatar)
    if not has_face:
        return Check(found=found is not None, ok=found is None and centre_square)
    if found is None:
        return Check(found=False)
    share, cx, cy = found
    low, high = SHARE_BOUNDS[size]
    ok = (
        share >= low
        and (share <= high or whole_short_side)
        and CENTRE_X[0] <= cx <= CENTRE_X[1]
        and CENTRE_Y[0] <= cy <= CENTRE_Y[1]
    )
    return Check(True, share, cx, cy, ok)


def run_rule(img: Image.Image, has_face: bool, boxes: dict[int, tuple[int, int, int, int]]) -> dict[int, Check]:
    renditions = imaging.render_avatar(img, box=boxes)
    short = min(img.size)
    centre = imaging.square_crop_box(*img.size, None)
    return {
        size: check(
            renditions[(size, "webp")],
            size,
            whole_short_side=boxes[size][2] - boxes[size][0] >= short,
            has_face=has_face,
            centre_square=boxes[size] == centre,
        )
        for size in CHECK_SIZES
    }


def cell(result: Check, face_expected: bool) -> str:
    mark = "ok" if result.ok else "MISS"
    if not face_expected:
        return f"{'face!' if result.found else 'none'} {mark}"
    if not result.found:
        return f"not found {mark}"
    return f"{result.share:.0%} @({result.cx:.2f},{result.cy:.2f}) {mark}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, default=None, help="write contact sheets here")
    args = parser.parse_args()
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)

    rows, met = [], {"new": 0, "today": 0}
    renditions_met = {"new": 0, "today": 0}
    cpu: list[float] = []
    photos = photo_set()
    for number, (name, original) in enumerate(photos, 1):
        data = encode(original)
        started = time.process_time()
        img, face = imaging.decode_and_detect(data)
        new_boxes = imaging.framing_boxes(*img.size, face)
        imaging.render_avatar(img, box=new_boxes)
        cpu.append((time.process_time() - started) * 1000)
        today = dict.fromkeys(imaging.AVATAR_SIZES, imaging.square_crop_box(*img.size, face))
        has_face = "no face" not in name
        results = {"new": run_rule(img, has_face, new_boxes), "today": run_rule(img, has_face, today)}
        for rule, by_size in results.items():
            met[rule] += all(r.ok for r in by_size.values())
            renditions_met[rule] += sum(r.ok for r in by_size.values())
        yunet = f"{face[3] / min(img.size):.0%}" if face else "none"
        rows.append((number, name, f"{original.width}x{original.height}", yunet, results, "no face" not in name))
        if args.save:
            sheet = Image.new("RGB", (2 * (512 + 128) + 30, 512), "white")
            x = 0
            for rule in ("new", "today"):
                boxes = new_boxes if rule == "new" else today
                out = imaging.render_avatar(img, box=boxes, sizes=CHECK_SIZES)
                for size in (512, 128):
                    sheet.paste(Image.open(io.BytesIO(out[(size, "webp")])), (x, 0))
                    x += size
                x += 30
            sheet.save(args.save / f"{number:02d}.png")

    total = len(photos)
    print(f"Framing check: {total} photos, Haar cascade (alt2) on the 128 and 512 px avatars\n")
    print("| # | photo | size | YuNet face / short side | new 128 px | new 512 px | today 128 px | today 512 px |")
    print("|---:|---|---|---:|---|---|---|---|")
    for number, name, size, yunet, results, has_face in rows:
        cells = [cell(results[rule][s], has_face) for rule in ("new", "today") for s in CHECK_SIZES]
        print(f"| {number} | {name} | {size} | {yunet} | " + " | ".join(cells) + " |")
    print()
    for rule in ("new", "today"):
        label = "new rule" if rule == "new" else "today's rule (baseline)"
        print(
            f"{label}: {met[rule]}/{total} photos ({met[rule] / total:.0%}) meet the rule at both sizes; "
            f"{renditions_met[rule]}/{2 * total} renditions"
        )
    print(f"pipeline CPU (decode, detect, frame, five WEBP) per photo: median {statistics.median(cpu):.0f} ms")
    return 0 if met["new"] >= met["today"] else 1


if __name__ == "__main__":
    sys.exit(main())
