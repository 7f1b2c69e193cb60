"""Support's crop review and manual override in the admin: permission, audit, survives a refresh,
reset when the source photo changes."""

import io

import pytest
from django.contrib.auth.models import Permission
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from PIL import Image

from avtrz.avatars import crops, enrichment, imaging
from avtrz.avatars.models import AvatarImage, CropChange, Profile
from tests.factories import UserFactory


pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer_client(db):
    viewer = UserFactory(email="viewer@avtrz.dev", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__in=["view_avatarimage", "view_profile"]))
    client = Client()
    client.force_login(viewer)
    return client


def crop_url(image: AvatarImage) -> str:
    return reverse("admin:avatars_avatarimage_crop", args=[image.pk])


def served(client, handle: str, size: int = 128) -> str:
    from workspaces import services
    from workspaces.models import ApiKey, Workspace

    actor = Workspace.objects.get(slug="acme").memberships.get().user
    key = services.create_api_key(
        actor=actor, workspace=Workspace.objects.get(slug="acme"), kind=ApiKey.Kind.PUBLISHABLE, name="t"
    )
    response = client.get("/v1/avatar", {"key": key, "username": handle, "size": str(size)})
    assert response.status_code == 302
    return response["Location"].rsplit("/", 1)[1].split(".")[0]


def test_staff_see_the_source_with_its_boxes_and_the_five_renditions(staff_client, eileen):
    image = eileen.current_image
    html = staff_client.get(crop_url(image)).content.decode()
    for size in imaging.AVATAR_SIZES:
        assert image.renditions["webp"][str(size)] in html
    assert "Save crop and re-render" in html
    assert "Green: 32–128 px crop " + ", ".join(map(str, image.crop_boxes["128"])) in html
    source = staff_client.get(reverse("admin:avatars_avatarimage_crop_source", args=[image.pk]))
    assert source["Content-Type"] == "image/png"
    assert "no-store" in source["Cache-Control"]
    preview = Image.open(io.BytesIO(source.content)).convert("RGB")
    assert preview.size == (720, 720)
    left, top, _, _ = image.crop_boxes["128"]
    x, y = round(left * 0.9), round(top * 0.9) + 40
    assert preview.getpixel((x + 1, y)) == pytest.approx((20, 170, 60), abs=40)  # the green tight box


def test_the_crop_page_is_linked_from_the_profile_and_the_image(staff_client, eileen):
    for url in (
        reverse("admin:avatars_profile_change", args=[eileen.pk]),
        reverse("admin:avatars_avatarimage_change", args=[eileen.current_image_id]),
    ):
        assert crop_url(eileen.current_image) in staff_client.get(url).content.decode()


def test_a_manual_crop_re_renders_is_audited_and_is_served(
    staff_client, staff, eileen, acme, django_capture_on_commit_callbacks
):
    image = eileen.current_image
    before = dict(image.renditions["webp"])
    assert served(Client(), "eileen-collins") == before["128"]
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(crop_url(image), {"left": 200, "top": 50, "side": 400})
    assert response.status_code == 302
    image.refresh_from_db()
    assert image.manual_box == [200, 50, 600, 450]
    assert image.crop_boxes == {str(size): [200, 50, 600, 450] for size in imaging.AVATAR_SIZES}
    assert set(image.renditions["webp"].values()).isdisjoint(before.values())
    assert image.previous_renditions[-1]["reason"] == "manual crop"
    assert default_storage.exists(f"avatars/{before['128']}.webp")  # old URLs keep working
    change = CropChange.objects.get()
    assert (change.actor, change.action) == (staff, CropChange.Action.MANUAL)
    assert (change.box_before, change.box_after) == (None, [200, 50, 600, 450])
    assert change.renditions_before["webp"] == before
    assert change.renditions_after == image.renditions
    assert served(Client(), "eileen-collins") == image.renditions["webp"]["128"]
    assert "Manual crop set" in staff_client.get(crop_url(image)).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(crop_url(image), {"do": "reset"})
    image.refresh_from_db()
    assert image.manual_box is None
    assert image.renditions["webp"] == before  # the rule gives the same files again
    reset = CropChange.objects.get(action=CropChange.Action.RESET)
    assert (reset.actor, reset.box_before, reset.box_after) == (staff, [200, 50, 600, 450], None)
    assert served(Client(), "eileen-collins") == before["128"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"left": 600, "top": 0, "side": 400}, "inside the 800x800 photo"),
        ({"left": 0, "top": 0, "side": 4}, "greater than or equal to 16"),
        ({"left": -1, "top": 0, "side": 100}, "greater than or equal to 0"),
        ({"left": "a", "top": 0, "side": 100}, "whole number"),
    ],
)
def test_a_bad_box_is_refused_and_changes_nothing(staff_client, eileen, data, message):
    image = eileen.current_image
    response = staff_client.post(crop_url(image), data)
    assert response.status_code == 200
    assert message in response.content.decode()
    image.refresh_from_db()
    assert image.manual_box is None
    assert not CropChange.objects.exists()


def test_view_only_staff_can_look_but_not_change(viewer_client, eileen):
    image = eileen.current_image
    response = viewer_client.get(crop_url(image))
    assert response.status_code == 200
    assert "Save crop and re-render" not in response.content.decode()
    assert viewer_client.post(crop_url(image), {"left": 0, "top": 0, "side": 400}).status_code == 403
    assert viewer_client.post(crop_url(image), {"do": "reset"}).status_code == 403
    image.refresh_from_db()
    assert image.manual_box is None
    assert not CropChange.objects.exists()


def test_people_who_are_not_staff_are_sent_to_the_login(eileen, alice_client):
    image = eileen.current_image
    for client in (Client(), alice_client):
        for url in (crop_url(image), reverse("admin:avatars_avatarimage_crop_source", args=[image.pk])):
            response = client.post(url, {"left": 0, "top": 0, "side": 400})
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert not CropChange.objects.exists()


def test_a_manual_crop_survives_refreshes_and_is_reset_when_the_photo_changes(
    staff_client, linkedin, django_capture_on_commit_callbacks
):
    linkedin.profile("cropped", photo_url=linkedin.photo("face.jpg", photo_id="FIRST", uploaded=1))
    image = enrichment.enrich("cropped").current_image
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(crop_url(image), {"left": 100, "top": 100, "side": 500})
    image.refresh_from_db()
    manual = dict(image.renditions["webp"])

    # A refresh that finds the same photo keeps the image and its manual crop; so does a forced re-render.
    assert enrichment.enrich("cropped").current_image_id == image.pk
    assert crops.rerender_outdated(force=True) == (0, 0)
    image.refresh_from_db()
    assert image.manual_box == [100, 100, 600, 600]
    assert image.renditions["webp"] == manual

    # A new photo is a new image, framed by the rule; the manual crop stays with the old photo.
    linkedin.profile("cropped", photo_url=linkedin.photo("face_offcentre.jpg", photo_id="SECOND", uploaded=2))
    fresh = enrichment.enrich("cropped").current_image
    assert fresh.pk != image.pk
    assert fresh.manual_box is None
    assert fresh.framing_version == imaging.FRAMING_VERSION
    assert Profile.objects.get(handle="cropped").current_image.renditions["webp"]["128"] not in manual.values()
