"""The framing rule (imaging.frame_box / framing_boxes / pick_face) on face boxes, without a detector."""

import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from avtrz.avatars.imaging import (
    AVATAR_SIZES,
    FACE_CENTRE_AT,
    LOOSE_FACE_SHARE,
    MAX_UPSCALE,
    TIGHT_FACE_SHARE,
    decode_and_detect,
    decode_image,
    detect_face,
    frame_box,
    framing_boxes,
    pick_face,
    render_avatar,
    square_crop_box,
)


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "images"


def inside(face, box) -> bool:
    x, y, w, h = face
    left, top, right, bottom = box
    return left <= x and top <= y and x + w <= right and y + h <= bottom


def side(box) -> int:
    left, top, right, bottom = box
    assert right - left == bottom - top
    return right - left


def within(box, width, height) -> bool:
    left, top, right, bottom = box
    return left >= 0 and top >= 0 and right <= width and bottom <= height


# --- one box ---


def test_small_face_in_a_square_photo_is_framed_head_and_shoulders():
    face = (450, 300, 100, 100)
    box = frame_box(1000, 1000, face, face_share=TIGHT_FACE_SHARE)
    assert side(box) == 222  # 100 / 0.45
    left, top, right, bottom = box
    assert left + side(box) / 2 == pytest.approx(500, abs=1)  # horizontally centred on the face
    assert (350 - top) / side(box) == pytest.approx(FACE_CENTRE_AT, abs=0.01)  # face centre 46 % down
    assert (300 - top) / side(box) < 0.5  # the face (and its eyes) start in the upper half
    assert (300 - top) / side(box) > 0.2  # headroom above the forehead for the hair


def test_looser_share_gives_a_larger_square():
    face = (450, 300, 100, 100)
    assert side(frame_box(1000, 1000, face, face_share=LOOSE_FACE_SHARE)) == 278


@pytest.mark.parametrize(
    ("face", "expected"),
    [
        ((0, 400, 100, 100), (0, 348, 222, 570)),  # left edge: shifted right, not shrunk
        ((900, 400, 100, 100), (778, 348, 1000, 570)),  # right edge
        ((450, 0, 100, 100), (389, 0, 611, 222)),  # top edge
        ((450, 900, 100, 100), (389, 778, 611, 1000)),  # bottom edge
        ((0, 0, 100, 100), (0, 0, 222, 222)),  # corner
    ],
)
def test_clamped_at_each_edge_by_shifting(face, expected):
    box = frame_box(1000, 1000, face, face_share=TIGHT_FACE_SHARE)
    assert box == expected
    assert inside(face, box)


def test_shrunk_to_the_short_side_when_the_frame_does_not_fit():
    # A 200 px face in a 1000x300 banner wants a 444 px square: it gets the whole height, on the face.
    face = (700, 50, 200, 200)
    box = frame_box(1000, 300, face, face_share=TIGHT_FACE_SHARE)
    assert box == square_crop_box(1000, 300, face)
    assert side(box) == 300
    assert inside(face, box)


def test_a_face_that_already_fills_the_share_keeps_the_largest_square():
    face = (150, 100, 500, 520)  # a close-up: 65 % of the side
    assert frame_box(800, 800, face) == square_crop_box(800, 800, face) == (0, 0, 800, 800)


def test_a_huge_face_box_larger_than_the_photo_gives_the_whole_photo():
    assert frame_box(400, 300, (0, 0, 400, 300)) == square_crop_box(400, 300, (0, 0, 400, 300))


def test_a_wide_face_box_is_kept_narrower_than_the_frame():
    box = frame_box(2000, 2000, (900, 900, 300, 100), face_share=TIGHT_FACE_SHARE)
    assert side(box) >= 300 / 0.62 - 1
    assert inside((900, 900, 300, 100), box)


def test_tiny_face_is_limited_by_the_upscale_floor():
    face = (1000, 1000, 10, 12)
    assert side(frame_box(2000, 2000, face, face_share=TIGHT_FACE_SHARE)) == 27
    box = frame_box(2000, 2000, face, face_share=TIGHT_FACE_SHARE, min_side=64)
    assert side(box) == 64
    assert inside(face, box)


def test_no_face_is_the_centre_square():
    assert frame_box(900, 500, None) == square_crop_box(900, 500, None) == (200, 0, 700, 500)
    assert frame_box(500, 900, None, min_side=256) == (0, 200, 500, 700)


def test_photo_smaller_than_the_frame_is_not_padded():
    box = frame_box(100, 80, (40, 20, 20, 20), face_share=LOOSE_FACE_SHARE, min_side=256)
    assert side(box) == 80
    assert within(box, 100, 80)


@given(
    st.integers(1, 3000),
    st.integers(1, 3000),
    st.floats(0, 1),
    st.floats(0, 1),
    st.floats(0.001, 1),
    st.floats(0.5, 2),
    st.sampled_from([1, 16, 64, 256]),
)
def test_box_is_a_square_inside_the_photo_that_keeps_the_face(width, height, fx, fy, fs, aspect, min_side):
    short = min(width, height)
    h = max(1, min(height, int(short * fs)))
    w = max(1, min(short, int(h * aspect)))  # a face wider than the short side cannot fit any square
    x, y = int((width - w) * fx), int((height - h) * fy)
    for share in (TIGHT_FACE_SHARE, LOOSE_FACE_SHARE):
        box = frame_box(width, height, (x, y, w, h), face_share=share, min_side=min_side)
        assert within(box, width, height)
        assert side(box) >= min(short, min_side)
        assert side(box) <= short
        assert inside((x, y, w, h), box)


# --- several faces ---


def test_largest_face_wins():
    faces = [(100, 100, 50, 50, 0.9), (600, 600, 200, 200, 0.9)]
    assert pick_face(faces, 1000, 1000) == (600, 600, 200, 200)


def test_of_equal_faces_the_most_central_wins():
    faces = [(0, 0, 100, 100, 0.9), (450, 450, 100, 100, 0.9), (900, 450, 100, 100, 0.9)]
    assert pick_face(faces, 1000, 1000) == (450, 450, 100, 100)


def test_a_slightly_larger_face_in_a_corner_loses_to_a_central_one():
    faces = [(0, 0, 120, 120, 0.9), (450, 450, 100, 100, 0.9)]
    assert pick_face(faces, 1000, 1000) == (450, 450, 100, 100)


def test_no_candidates_is_no_face():
    assert pick_face([], 100, 100) is None


def test_the_detector_picks_the_central_face_of_two_equal_ones():
    portrait = decode_image((FIXTURES / "face.jpg").read_bytes()).resize((300, 300))
    canvas = Image.new("RGB", (1500, 600), "grey")
    canvas.paste(portrait, (50, 150))
    canvas.paste(portrait, (600, 150))
    face = detect_face(canvas)
    assert face is not None
    assert 600 <= face[0] <= 900


# --- per size ---


def test_sizes_are_framed_tight_small_and_looser_large():
    face = (900, 900, 100, 100)
    boxes = framing_boxes(2000, 2000, face)
    assert set(boxes) == set(AVATAR_SIZES)
    assert boxes[32] == boxes[64] == boxes[128]
    assert boxes[256] == boxes[512]
    assert side(boxes[128]) == 222  # face 45 %
    assert side(boxes[512]) == 278  # face 36 %, and 278 px >= 512 / 2: upscale within the limit
    for box in boxes.values():
        assert inside(face, box)


def test_small_faces_loosen_rather_than_upscale_past_the_limit():
    face = (990, 990, 20, 20)
    boxes = framing_boxes(2000, 2000, face)
    assert side(boxes[512]) == 512 / MAX_UPSCALE
    assert side(boxes[128]) == 128 / MAX_UPSCALE
    assert all(inside(face, box) for box in boxes.values())


def test_no_face_frames_every_size_as_the_centre_square():
    assert set(framing_boxes(900, 500, None).values()) == {(200, 0, 700, 500)}


def test_only_requested_sizes_are_framed():
    boxes = framing_boxes(2000, 2000, (900, 900, 100, 100), sizes=(512, 64))
    assert set(boxes) == {64, 512}
    assert side(boxes[64]) == 222


def test_the_real_portrait_is_framed_around_the_face():
    img = decode_image((FIXTURES / "face.jpg").read_bytes())
    face = detect_face(img)
    boxes = framing_boxes(*img.size, face)
    assert side(boxes[128]) < 800  # no longer the whole 800 px photo
    assert face[3] / side(boxes[128]) == pytest.approx(TIGHT_FACE_SHARE, abs=0.01)
    assert inside(face, boxes[128])
    assert inside(face, boxes[512])


# --- rendering with per-size boxes ---


def marked(width: int = 400, height: int = 400) -> Image.Image:
    """White, with a red square in the middle."""
    img = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(img).rectangle((150, 150, 249, 249), fill="red")
    return img


def test_render_uses_each_size_box():
    img = marked()
    boxes = {512: (0, 0, 400, 400), 256: (0, 0, 400, 400), 128: (150, 150, 250, 250), 64: (150, 150, 250, 250)}
    out = render_avatar(img, box=boxes, sizes=boxes)
    # The tight 128 rendition is all red; the 512 one shows the white frame around it.
    small = Image.open(io.BytesIO(out[(128, "webp")])).convert("RGB")
    large = Image.open(io.BytesIO(out[(512, "webp")])).convert("RGB")
    assert small.getpixel((2, 2))[1] < 60
    assert large.getpixel((2, 2))[1] > 200
    assert Image.open(io.BytesIO(out[(64, "webp")])).size == (64, 64)


def test_render_refuses_a_size_without_a_box():
    with pytest.raises(ValueError, match="no crop box"):
        render_avatar(marked(), box={512: (0, 0, 400, 400)}, sizes=(512, 32))


def test_one_box_for_all_sizes_still_works():
    out = render_avatar(marked(), box=(150, 150, 250, 250), sizes=(512, 32))
    assert Image.open(io.BytesIO(out[(512, "webp")])).convert("RGB").getpixel((5, 5))[1] < 60


# --- small faces in big photos ---


def jpeg(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def portrait(side: int) -> Image.Image:
    return decode_image((FIXTURES / "face.jpg").read_bytes()).resize((side, side), Image.Resampling.LANCZOS)


def test_a_small_face_far_off_centre_on_a_large_canvas_is_found_by_the_second_pass():
    canvas = Image.new("RGB", (3000, 2000), (120, 130, 140))
    canvas.paste(portrait(500), (2450, 80))
    face = detect_face(canvas)
    assert face is not None
    assert 2450 < face[0] < 2950
    assert 80 < face[1] < 580


def test_a_small_face_in_a_big_jpeg_is_framed_from_finer_pixels():
    canvas = Image.new("RGB", (1200, 1200), (120, 130, 140))
    canvas.paste(portrait(360), (420, 600))
    data = jpeg(canvas)
    assert decode_image(data, min_side=512).size == (600, 600)  # what the fast decode keeps
    img, face = decode_and_detect(data)
    assert img.size == (1200, 1200)
    assert face is not None
    assert 420 < face[0] < 780
    assert 600 < face[1] < 960
    left, _, right, _ = framing_boxes(*img.size, face)[512]
    assert right - left >= 256  # at most 2x upscaled


def test_a_face_that_fills_the_photo_keeps_the_fast_decode():
    data = jpeg(portrait(1600))
    img, face = decode_and_detect(data)
    assert img.size == (800, 800)
    assert face is not None


# --- boxes in source pixels ---


def test_displayed_size_applies_exif_orientation():
    from avtrz.avatars.imaging import displayed_size

    assert displayed_size((FIXTURES / "rotated.jpg").read_bytes()) == (80, 120)  # stored 120x80, Orientation=6
    assert displayed_size((FIXTURES / "face.jpg").read_bytes()) == (800, 800)


def test_scale_box_keeps_a_square_inside_the_photo():
    from avtrz.avatars.imaging import scale_box

    assert scale_box((10, 20, 110, 120), 2.0, 1000, 1000) == (20, 40, 220, 240)
    assert scale_box((300, 300, 400, 400), 2.51, 1000, 1000) == (749, 749, 1000, 1000)  # clamped, still square
    assert scale_box((0, 0, 500, 500), 3.0, 1200, 900) == (0, 0, 900, 900)
