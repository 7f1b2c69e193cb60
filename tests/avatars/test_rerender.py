"""Face framing end to end (/v1/avatar over a real HTTP photo source) and re-rendering stored avatars."""

import io
from io import StringIO

import cv2
import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from PIL import Image

from avtrz.avatars import crops, imaging, tasks
from avtrz.avatars.cards import load_card
from avtrz.avatars.models import AvatarImage, Profile
from tests.avatars.conftest import IMAGES


pytestmark = pytest.mark.django_db

_haar = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_alt2.xml")


def haar_face(data: bytes):
    """(height share, centre x, centre y) of the largest face an independent detector finds."""
    grey = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    faces = _haar.detectMultiScale(grey, scaleFactor=1.05, minNeighbors=5, minSize=(20, 20))
    assert len(faces), "the Haar cascade finds no face in the avatar"
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    side = grey.shape[0]
    return h / side, (x + w / 2) / side, (y + h / 2) / side


def scene_jpeg() -> bytes:
    """A 1600x1200 photo with the portrait small and off-centre: the face is ~6 % of the height."""
    canvas = Image.new("RGB", (1600, 1200), (150, 160, 175))
    with Image.open(IMAGES / "face.jpg") as portrait:
        canvas.paste(portrait.convert("RGB").resize((400, 400)), (1050, 650))
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def fetch(client, location: str) -> bytes:
    response = client.get(location.removeprefix("http://testserver"))
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def avatar(client, key, handle, size):
    response = client.get("/v1/avatar", {"key": key, "username": handle, "size": str(size)})
    assert response.status_code == 302
    return response["Location"]


@pytest.mark.django_db(transaction=True)
def test_a_small_face_in_a_scene_is_framed_head_and_shoulders_through_the_api(client, pk, linkedin):
    linkedin.profile("scene-person", photo_url=linkedin.photo("scene.jpg", body=scene_jpeg()))
    share, cx, cy = haar_face(fetch(client, avatar(client, pk, "scene-person", 128)))
    assert 0.32 <= share <= 0.53
    assert 0.38 <= cx <= 0.62
    assert 0.30 <= cy <= 0.60
    share, cx, cy = haar_face(fetch(client, avatar(client, pk, "scene-person", 512)))
    assert 0.25 <= share <= 0.53
    assert 0.38 <= cx <= 0.62
    image = Profile.objects.get(handle="scene-person").current_image
    assert image.framing_version == imaging.FRAMING_VERSION
    assert (image.source_width, image.source_height) == (1600, 1200)
    assert image.face_box is not None and 1050 < image.face_box[0] < 1450
    assert image.crop_boxes["32"] == image.crop_boxes["128"] != image.crop_boxes["512"]


def make_old_rule(image: AvatarImage) -> dict:
    """Turn ``image`` into what the previous rule stored: the largest square, framing version 1."""
    with default_storage.open(f"sources/{image.source_hash}") as source:
        decoded = imaging.decode_image(source.read())
    box = imaging.square_crop_box(*decoded.size, imaging.detect_face(decoded))
    old = {}
    for (size, fmt), blob in imaging.render_avatar(decoded, box=box).items():
        digest = imaging.content_hash(blob)
        crops.save_blob(f"avatars/{digest}.{fmt}", blob)
        old.setdefault(fmt, {})[str(size)] = digest
    AvatarImage.objects.filter(pk=image.pk).update(renditions=old, framing_version=1, crop_boxes={}, face_box=None)
    return old


@pytest.fixture
def old_eileen(eileen):
    old = make_old_rule(eileen.current_image)
    crops._refresh_card(eileen.current_image_id)
    return old


def test_the_command_re_renders_old_avatars_and_old_urls_keep_working(
    client, pk, old_eileen, django_capture_on_commit_callbacks
):
    old_location = avatar(client, pk, "eileen-collins", 128)
    assert old_location.endswith(f"{old_eileen['webp']['128']}.webp")
    out = StringIO()
    call_command("rerender_avatars", "--dry-run", stdout=out)
    assert "1 avatar(s)" in out.getvalue()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("rerender_avatars", stdout=out)
    assert "Re-rendered 1 avatar(s) with framing rule 2; 0 failed." in out.getvalue()

    image = Profile.objects.get(handle="eileen-collins").current_image
    assert image.framing_version == imaging.FRAMING_VERSION
    assert set(image.renditions["webp"].values()).isdisjoint(old_eileen["webp"].values())
    assert image.previous_renditions[-1]["renditions"] == old_eileen
    assert image.previous_renditions[-1]["reason"] == "framing rule"
    new_location = avatar(client, pk, "eileen-collins", 128)  # the cached card moved on
    assert new_location.endswith(f"{image.renditions['webp']['128']}.webp")
    assert new_location != old_location
    assert fetch(client, old_location)  # the old durable URL is still served
    share, _, _ = haar_face(fetch(client, new_location))
    assert share > 0.32

    call_command("rerender_avatars", stdout=out)
    assert "Re-rendered 0 avatar(s)" in out.getvalue()  # idempotent


def test_the_task_is_a_thin_wrapper_and_leaves_manual_crops_alone(old_eileen):
    image = Profile.objects.get(handle="eileen-collins").current_image
    AvatarImage.objects.filter(pk=image.pk).update(manual_box=[0, 0, 400, 400])
    assert tasks.rerender_avatars.delay().get() == [0, 0]
    AvatarImage.objects.filter(pk=image.pk).update(manual_box=None)
    assert tasks.rerender_avatars.delay().get() == [1, 0]
    assert tasks.rerender_avatars.delay().get() == [0, 0]
    assert tasks.rerender_avatars.delay(force=True).get() == [1, 0]
    image.refresh_from_db()
    assert image.framing_version == imaging.FRAMING_VERSION


def test_png_renditions_are_cut_like_the_webp_ones(eileen, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        image = crops.add_formats(eileen.current_image, ("png",))
    webp = Image.open(default_storage.open(f"avatars/{image.renditions['webp']['128']}.webp")).convert("RGB")
    png = Image.open(default_storage.open(f"avatars/{image.renditions['png']['128']}.png")).convert("RGB")
    difference = np.abs(np.asarray(webp, dtype=int) - np.asarray(png, dtype=int)).mean()
    assert difference < 6  # the same crop, only WEBP's loss between them
    assert load_card("eileen-collins").rendition(128, "png") == image.renditions["png"]["128"]


def test_a_missing_source_is_reported_not_fatal(old_eileen):
    image = Profile.objects.get(handle="eileen-collins").current_image
    default_storage.delete(f"sources/{image.source_hash}")
    assert crops.rerender_outdated() == (0, 1)
