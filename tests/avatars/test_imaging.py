import io
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from avtrz.avatars.imaging import (
    AVATAR_SIZES,
    ImageError,
    content_hash,
    decode_image,
    detect_face,
    render_avatar,
    square_crop_box,
)


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "images"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height``: a decompression-bomb shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=2).astype(np.uint8), "RGB")


def inside(face, box) -> bool:
    x, y, w, h = face
    left, top, right, bottom = box
    return left <= x and top <= y and x + w <= right and y + h <= bottom


# --- face detection and crop on a real photo ---


def test_face_is_found_and_kept_in_the_crop():
    img = decode_image(fixture("face.jpg"))
    face = detect_face(img)
    assert face is not None, "YuNet must find the astronaut's face"
    x, y, w, h = face
    # The face is in the upper middle of the portrait, and face-sized.
    assert 250 < x + w / 2 < 450
    assert 100 < y + h / 2 < 300
    assert 80 < w < 250
    assert 80 < h < 250
    box = square_crop_box(*img.size, face)
    assert box == (0, 0, 800, 800)
    assert inside(face, box)


def test_off_centre_face_is_followed_by_the_crop():
    img = decode_image(fixture("face_offcentre.jpg"))
    assert img.size == (1600, 600)
    face = detect_face(img)
    assert face is not None
    assert face[0] > 1100, "the face is near the right edge"
    box = square_crop_box(*img.size, face)
    left, top, right, bottom = box
    assert right - left == bottom - top == 600
    assert inside(face, box)
    centre = square_crop_box(*img.size, None)
    assert not inside(face, centre), "a centre crop would have cut the face out"


def test_face_on_a_transparent_source_is_found():
    rgb = decode_image(fixture("face.jpg"))
    rgba = rgb.convert("RGBA")
    alpha = Image.new("L", rgba.size, 255)
    alpha.paste(0, (0, 0, 100, 100))
    rgba.putalpha(alpha)
    face = detect_face(rgba)
    assert face is not None
    assert np.abs(np.subtract(face, detect_face(rgb))).max() <= 4


def test_faceless_image_gets_the_centre_crop():
    img = gradient(900, 500)
    assert detect_face(img) is None
    assert square_crop_box(900, 500, None) == (200, 0, 700, 500)
    assert square_crop_box(500, 900, None) == (0, 200, 500, 700)


def test_tiny_images_do_not_break_the_detector():
    for size in [(1, 1), (10, 500), (15, 15), (16, 16), (3, 4000)]:
        assert detect_face(gradient(*size)) is None


def test_detector_is_usable_from_several_threads():
    img = decode_image(fixture("face.jpg"))
    expected = detect_face(img)
    results = []
    threads = [threading.Thread(target=lambda: results.append(detect_face(img))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 3


@pytest.mark.parametrize(
    ("size", "face", "box"),
    [
        ((1000, 400), (900, 100, 80, 100), (600, 0, 1000, 400)),  # clamped at the right edge
        ((1000, 400), (10, 100, 80, 100), (0, 0, 400, 400)),  # clamped at the left edge
        ((1000, 400), (480, 100, 80, 100), (320, 0, 720, 400)),  # centred on the face
        ((400, 1000), (150, 400, 100, 100), (0, 240, 400, 640)),  # headroom: centred 40 % down the face
        ((400, 400), (10, 10, 50, 50), (0, 0, 400, 400)),
    ],
)
def test_square_crop_box_geometry(size, face, box):
    assert square_crop_box(*size, face) == box
    assert inside(face, box)


@given(
    st.integers(1, 3000),
    st.integers(1, 3000),
    st.floats(0, 1),
    st.floats(0, 1),
    st.floats(0.01, 1),
)
def test_crop_box_is_always_the_largest_square_and_keeps_the_face(width, height, fx, fy, fs):
    side = min(width, height)
    w = h = max(1, int(side * fs))
    x, y = int((width - w) * fx), int((height - h) * fy)
    left, top, right, bottom = square_crop_box(width, height, (x, y, w, h))
    assert right - left == bottom - top == side
    assert min(left, top) >= 0
    assert right <= width
    assert bottom <= height
    assert inside((x, y, w, h), (left, top, right, bottom))


# --- rendering ---


def test_all_sizes_and_formats_are_rendered():
    img = decode_image(fixture("face.jpg"))
    box = square_crop_box(*img.size, detect_face(img))
    renditions = render_avatar(img, box=box, formats=("webp", "png"))
    assert set(renditions) == {(s, f) for s in AVATAR_SIZES for f in ("webp", "png")}
    for (size, fmt), data in renditions.items():
        out = Image.open(io.BytesIO(data))
        out.load()
        assert out.format == fmt.upper()
        assert out.size == (size, size)
        assert out.mode == "RGB"
        assert "exif" not in out.info
    assert len(renditions[(512, "webp")]) < len(renditions[(512, "png")])


def test_render_defaults_to_webp_of_the_centre_square():
    renditions = render_avatar(gradient(300, 200))
    assert set(renditions) == {(s, "webp") for s in AVATAR_SIZES}
    out = Image.open(io.BytesIO(renditions[(64, "webp")])).convert("RGB")
    # The centre square of a left-to-right red ramp starts at about a sixth of full red.
    assert 30 < out.getpixel((0, 32))[0] < 70


def test_small_sources_are_scaled_up_to_every_size():
    renditions = render_avatar(gradient(100, 100), sizes=(512, 32))
    assert Image.open(io.BytesIO(renditions[(512, "webp")])).size == (512, 512)


def test_render_is_deterministic():
    img = decode_image(fixture("face.jpg"))
    assert render_avatar(img, sizes=(128,)) == render_avatar(img, sizes=(128,))


@pytest.mark.parametrize(("kwargs", "message"), [({"formats": ("gif",)}, "formats"), ({"sizes": (0,)}, "sizes")])
def test_render_refuses_unknown_formats_and_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        render_avatar(gradient(10, 10), **kwargs)


def test_alpha_is_kept_in_png_and_webp():
    img = decode_image(fixture("alpha.png"))
    assert (img.mode, img.format) == ("RGBA", "PNG")
    renditions = render_avatar(img, sizes=(64,), formats=("png", "webp"))
    for fmt in ("png", "webp"):
        out = Image.open(io.BytesIO(renditions[(64, fmt)]))
        assert out.mode == "RGBA"
        assert out.getpixel((0, 0))[3] == 0, "the corner stays transparent"
        assert out.getpixel((32, 32))[3] == 255, "the middle stays opaque"


def test_opaque_alpha_channel_is_dropped():
    buffer = io.BytesIO()
    gradient(20, 20).convert("RGBA").save(buffer, "PNG")
    assert decode_image(buffer.getvalue()).mode == "RGB"


# --- decoding ---


@pytest.mark.parametrize(
    ("name", "size", "mode", "source_format"),
    [
        ("face.jpg", (800, 800), "RGB", "JPEG"),
        ("cmyk.jpg", (160, 160), "RGB", "JPEG"),
        ("palette.png", (96, 96), "RGB", "PNG"),
        ("grey16.png", (64, 48), "RGB", "PNG"),
        ("animated.gif", (48, 32), "RGB", "GIF"),
        ("rotated.jpg", (80, 120), "RGB", "JPEG"),
        ("alpha.png", (96, 96), "RGBA", "PNG"),
    ],
)
def test_decoded_modes(name, size, mode, source_format):
    img = decode_image(fixture(name))
    assert (img.size, img.mode, img.format) == (size, mode, source_format)


def test_cmyk_colours_survive():
    rgb = decode_image(fixture("cmyk.jpg"))
    reference = decode_image(fixture("face.jpg")).resize((160, 160))
    difference = np.abs(np.asarray(rgb, np.int16) - np.asarray(reference, np.int16)).mean()
    assert difference < 25, "not inverted, not washed out"


def test_sixteen_bit_grey_is_scaled_not_clipped():
    img = decode_image(fixture("grey16.png"))
    row = [img.getpixel((x, 10))[0] for x in (0, 32, 63)]
    assert row[0] < 5
    assert 110 < row[1] < 145
    assert row[2] > 250


def test_animated_gif_gives_its_first_frame():
    assert decode_image(fixture("animated.gif")).getpixel((5, 5)) == (208, 0, 0)


def test_exif_orientation_is_applied():
    img = decode_image(fixture("rotated.jpg"))
    assert img.size == (80, 120)  # stored 120x80
    # The light band on the stored left edge is on top once rotated 90 degrees clockwise.
    assert min(img.getpixel((40, 5))) > 200
    assert max(img.getpixel((40, 110))) < 180
    assert "exif" not in Image.open(io.BytesIO(render_avatar(img, sizes=(32,))[(32, "webp")])).info


def test_big_jpegs_can_decode_at_a_reduced_scale():
    buffer = io.BytesIO()
    gradient(2400, 1600).save(buffer, "JPEG", quality=80)
    full = decode_image(buffer.getvalue())
    reduced = decode_image(buffer.getvalue(), min_side=512)
    assert full.size == (2400, 1600)
    assert reduced.size == (1200, 800)  # DCT scaling by 1/2: the largest that keeps >= 512


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(fixture("not_an_image.jpg"), "not a readable JPEG, PNG, WEBP or GIF", id="html"),
        pytest.param(fixture("truncated.jpg"), "truncated", id="truncated-jpeg"),
        pytest.param(b"GIF89a" + b"\0" * 20, "not a readable", id="gif-header-only"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not a readable", id="png-signature-only"),
        pytest.param(b"BM" + b"\0" * 60, "not a readable", id="bmp-not-accepted"),
        pytest.param(png_header_only(100_000, 100_000), "decompression bomb", id="bomb-past-pillow-limit"),
        pytest.param(png_header_only(8_000, 6_000), "limit is 40000000 pixels", id="bomb-past-our-limit"),
        pytest.param(png_header_only(13_000, 10), "limit is 12000 px per side", id="too-wide"),
        pytest.param(png_header_only(10, 10), "truncated or corrupt", id="pixels-missing"),
    ],
)
def test_bad_input_raises_image_error(data, message):
    with pytest.raises(ImageError, match=message):
        decode_image(data)


def test_limits_are_per_call_and_leave_pillow_global_alone():
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageError):
        decode_image(fixture("face.jpg"), max_pixels=100_000)
    with pytest.raises(ImageError):
        decode_image(fixture("face.jpg"), max_dimension=500)
    assert decode_image(fixture("face.jpg")).size == (800, 800)
    assert Image.MAX_IMAGE_PIXELS == before


SMALL_VALID = [fixture(n) for n in ("cmyk.jpg", "palette.png", "animated.gif", "alpha.png", "rotated.jpg")]


def decode_or_image_error(data: bytes) -> None:
    try:
        decode_image(data)
    except ImageError:
        pass


@given(st.binary(max_size=4096))
def test_random_bytes_only_ever_raise_image_error(data):
    decode_or_image_error(data)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SMALL_VALID), st.floats(0, 1))
def test_truncated_files_only_ever_raise_image_error(data, fraction):
    decode_or_image_error(data[: int(len(data) * fraction)])


@pytest.mark.filterwarnings("ignore:Tag data larger than file")  # Pillow's note on mangled EXIF
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SMALL_VALID), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8))
def test_corrupted_files_only_ever_raise_image_error(data, flips):
    corrupted = bytearray(data)
    for where, value in flips:
        corrupted[int(where * (len(corrupted) - 1))] = value
    decode_or_image_error(bytes(corrupted))


def test_content_hash():
    assert content_hash(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
