"""Enrichment against a LinkedIn-shaped HTTP server on 127.0.0.1: every branch of the source."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image

from avtrz.avatars import enrichment, imaging, tasks
from avtrz.avatars.cards import cached_card
from avtrz.avatars.models import AvatarImage, Profile
from tests.avatars.conftest import IMAGES


pytestmark = pytest.mark.django_db
HTML = {"Content-Type": "text/html; charset=utf-8"}


def stored(digest: str, fmt: str = "webp") -> Image.Image:
    with default_storage.open(f"avatars/{digest}.{fmt}") as blob:
        return Image.open(io.BytesIO(blob.read()))


def test_og_only_page(linkedin):
    linkedin.profile("og-person", name="Olga Green", og_only=True, photo_url=linkedin.photo("face.jpg"))
    profile = enrichment.enrich("og-person")
    assert profile.status == Profile.Status.RESOLVED
    assert profile.name == "Olga Green"
    assert profile.current_image.face_detected


def test_json_ld_fields_and_photo_metadata(linkedin):
    url = linkedin.photo("face.jpg", photo_id="ABC", uploaded=1716832153410, expires=1893456000)
    linkedin.profile(
        "dana",
        name="Dana Okafor",
        photo_url=url,
        headline="Head of Risk",
        description="Payments and risk.",
        industry="Financial Services",
    )
    profile = enrichment.enrich("dana")
    assert (profile.name, profile.headline, profile.summary) == ("Dana Okafor", "Head of Risk", "Payments and risk.")
    assert profile.location.startswith("Lisbon")
    assert "shrink_800_800" in profile.source_photo_url  # the largest rendition was fetched
    assert profile.photo_expires_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert "ABC" in profile.photo_version
    # refreshed before the signed URL expires
    assert profile.next_check_at <= profile.photo_expires_at
    image = profile.current_image
    assert set(image.renditions) == {"webp"}
    for size in (32, 64, 128, 256, 512):
        assert stored(image.rendition(size, "webp")).size == (size, size)
    assert cached_card("dana").is_resolved


def test_not_found(linkedin):
    linkedin.answer("gone", 404)
    profile = enrichment.enrich("gone")
    assert profile.status == Profile.Status.NOT_FOUND
    assert profile.next_check_at > timezone.now() + timedelta(days=20)


@pytest.mark.parametrize(
    ("status", "body", "options"),
    [
        (999, b"<html></html>", {}),
        (429, b"slow down", {}),
        (200, b"<html><head><title>Sign Up | LinkedIn</title></head><body>authwall</body></html>", {}),
    ],
)
def test_anti_bot_answers_mean_blocked_and_retry_later(linkedin, status, body, options):
    linkedin.answer("walled", status, body, **options)
    profile = enrichment.enrich("walled")
    assert profile.status == Profile.Status.BLOCKED
    assert profile.failures == 1
    first_retry = profile.next_check_at - timezone.now()
    assert timedelta(minutes=4) < first_retry <= timedelta(minutes=5)
    profile = enrichment.enrich("walled")
    assert profile.next_check_at - timezone.now() > first_retry  # backs off


def test_markup_the_html_parser_gives_up_on_is_garbage_not_a_crash(linkedin):
    linkedin.answer("broken", 200, b"<html><head><title>x</title></head><body><![1 garbage", headers=HTML)
    assert enrichment.enrich("broken").status == Profile.Status.BLOCKED


def test_redirect_to_the_login_wall_is_blocked(linkedin):
    linkedin.server.redirect("/in/redirected/", "/authwall?trk=x")
    linkedin.server.route("/authwall", body=b"<html>Sign in</html>", headers={"Content-Type": "text/html"})
    assert enrichment.enrich("redirected").status == Profile.Status.BLOCKED


def test_blocked_keeps_the_photo_we_had(linkedin):
    linkedin.profile("known", photo_url=linkedin.photo("face.jpg"))
    first = enrichment.enrich("known")
    linkedin.answer("known", 999)
    again = enrichment.enrich("known")
    assert again.status == Profile.Status.RESOLVED
    assert again.current_image_id == first.current_image_id
    assert again.failures == 1


def test_a_slow_source_is_bounded_by_the_timeout(linkedin, settings):
    settings.AVTRZ_FETCH_READ_TIMEOUT_S = 0.3
    linkedin.answer("slow", 200, b"<html></html>", delay=2.0)
    started = timezone.now()
    assert enrichment.enrich("slow").status == Profile.Status.BLOCKED
    assert (timezone.now() - started).total_seconds() < 1.5


def test_huge_photo_is_refused_not_stored(linkedin, monkeypatch):
    monkeypatch.setattr(enrichment, "PHOTO_MAX_BYTES", 10_000)
    linkedin.profile("big", photo_url=linkedin.photo("face.jpg"))
    profile = enrichment.enrich("big")
    assert profile.current_image is None
    assert profile.status == Profile.Status.BLOCKED  # retried later, never "no photo"


def test_a_non_image_photo_is_refused(linkedin):
    linkedin.profile("weird", photo_url=linkedin.photo("not_an_image.jpg"))
    profile = enrichment.enrich("weird")
    assert profile.current_image is None and not AvatarImage.objects.exists()


def test_photo_from_a_host_outside_the_allow_list_is_not_fetched(linkedin, settings):
    settings.AVTRZ_PHOTO_HOSTS = ["media.licdn.com"]
    linkedin.profile("elsewhere", photo_url=linkedin.photo("face.jpg"))
    assert enrichment.enrich("elsewhere").current_image is None
    assert not any("shrink_800_800" in r.path for r in linkedin.server.requests)


def test_png_with_alpha_gets_png_renditions_with_alpha(linkedin):
    linkedin.profile("transparent", photo_url=linkedin.photo("alpha.png", content_type="image/png"))
    image = enrichment.enrich("transparent").current_image
    assert set(image.renditions) == {"webp", "png"}
    assert stored(image.rendition(128, "png"), "png").mode == "RGBA"


def test_off_centre_face_stays_inside_the_square(linkedin):
    linkedin.profile("offcentre", photo_url=linkedin.photo("face_offcentre.jpg"))
    image = enrichment.enrich("offcentre").current_image
    assert image.face_detected
    # The crop followed the face to the right edge: a centre crop of this canvas shows mostly background.
    from avtrz.avatars import imaging

    with default_storage.open(f"sources/{image.source_hash}") as source:
        decoded = imaging.decode_image(source.read())
    face = imaging.detect_face(decoded)
    left, top, right, bottom = imaging.framing_boxes(*decoded.size, face)[128]
    x, y, w, h = face
    assert left <= x and x + w <= right and top <= y and y + h <= bottom
    assert left > (decoded.width - (right - left)) // 2  # moved off centre, towards the face


def test_a_changed_photo_is_re_encoded_and_the_old_url_keeps_working(linkedin, client):
    linkedin.profile("changer", photo_url=linkedin.photo("face.jpg", photo_id="OLD", uploaded=1))
    old = enrichment.enrich("changer").current_image
    old_digest = old.rendition(128, "webp")

    # Same photo version again: nothing re-encoded.
    assert enrichment.enrich("changer").current_image_id == old.pk

    linkedin.profile("changer", photo_url=linkedin.photo("face_offcentre.jpg", photo_id="NEW", uploaded=2))
    new = enrichment.enrich("changer").current_image
    assert new.pk != old.pk and new.rendition(128, "webp") != old_digest
    assert cached_card("changer").rendition(128, "webp") == new.rendition(128, "webp")
    assert client.get(f"/img/{old_digest}.webp").status_code == 200


def test_duplicate_deliveries_store_one_image(linkedin):
    linkedin.profile("twice", photo_url=linkedin.photo("face.jpg"))
    enrichment.enrich("twice")
    Profile.objects.filter(handle="twice").update(photo_version="")  # as if the first run had not finished
    enrichment.enrich("twice")
    assert AvatarImage.objects.filter(profile__handle="twice").count() == 1


def test_a_file_a_killed_worker_left_half_written_is_replaced(linkedin):
    photo = (IMAGES / "face.jpg").read_bytes()
    name = f"sources/{imaging.content_hash(photo)}"
    default_storage.save(name, ContentFile(photo[:1000]))
    linkedin.profile("half-written", photo_url=linkedin.photo("face.jpg"))
    assert enrichment.enrich("half-written").current_image is not None
    with default_storage.open(name) as stored_source:
        assert stored_source.read() == photo


def test_refresh_queues_due_profiles_once(linkedin, django_capture_on_commit_callbacks):
    linkedin.profile("due", photo_url=linkedin.photo("face.jpg"))
    profile = enrichment.enrich("due")
    Profile.objects.filter(pk=profile.pk).update(next_check_at=timezone.now() - timedelta(minutes=1))
    linkedin.profile("due", name="Renamed Person", photo_url=linkedin.photo("face.jpg"))
    assert tasks.refresh_due_profiles() == 1  # eager: enriched right away
    assert Profile.objects.get(pk=profile.pk).name == "Renamed Person"
    assert tasks.refresh_due_profiles() == 0


def test_falls_back_to_the_linked_size_when_the_largest_is_refused(linkedin):
    url = linkedin.photo("face.jpg", photo_id="SIGNED")
    small_path = url.split("?")[0].removeprefix(linkedin.server.url("").rstrip("/"))
    linkedin.server.route(small_path.replace("shrink_100_100", "shrink_800_800"), status=403, body=b"signature")
    linkedin.server.route(small_path, body=(IMAGES / "face.jpg").read_bytes(), headers={"Content-Type": "image/jpeg"})
    linkedin.profile("signed", photo_url=url)
    assert enrichment.enrich("signed").current_image is not None


def test_a_photo_host_slower_than_the_request_budget_is_waited_for_on_a_worker(linkedin, settings):
    settings.AVTRZ_FETCH_READ_TIMEOUT_S = 0.3
    settings.AVTRZ_PHOTO_TASK_READ_TIMEOUT_S = 3.0
    linkedin.profile("slow-cdn", photo_url=linkedin.photo("face.jpg", delay=1.0))
    profile = enrichment.enrich("slow-cdn", on_worker=True, photo_retries_left=3)
    assert profile.status == Profile.Status.RESOLVED and profile.current_image is not None


@pytest.mark.parametrize("photo", [{"delay": 1.0}, {"status": 503}], ids=["stalls", "answers-503"])
def test_a_failing_photo_host_is_retried_soon_not_blocked(linkedin, settings, photo):
    settings.AVTRZ_PHOTO_TASK_READ_TIMEOUT_S = 0.3
    url = linkedin.photo("face.jpg")
    large = url.split("?")[0].removeprefix(linkedin.server.url("").rstrip("/")).replace("100_100", "800_800")
    linkedin.server.route(large, body=b"", **photo)
    linkedin.profile("flaky-cdn", name="Flo Key", photo_url=url)
    with pytest.raises(enrichment.PhotoHostUnavailable):
        enrichment.enrich("flaky-cdn", on_worker=True, photo_retries_left=3)
    profile = Profile.objects.get(handle="flaky-cdn")
    assert profile.status == Profile.Status.ENRICHING and profile.failures == 0
    assert profile.name == "Flo Key"
    # Should the queued retry be lost, the refresh beat takes the profile up again.
    assert timedelta(minutes=9) < profile.next_check_at - timezone.now() <= enrichment.PHOTO_RETRY_FALLBACK
    assert cached_card("flaky-cdn").status == Profile.Status.ENRICHING

    # The quick tries used up: backed off like any failure.
    profile = enrichment.enrich("flaky-cdn", on_worker=True, photo_retries_left=0)
    assert profile.status == Profile.Status.BLOCKED and profile.failures == 1


def test_in_the_request_path_a_failing_photo_host_backs_off_without_a_quick_retry(linkedin):
    url = linkedin.photo("face.jpg")
    large = url.split("?")[0].removeprefix(linkedin.server.url("").rstrip("/")).replace("100_100", "800_800")
    linkedin.server.route(large, status=503, body=b"")
    linkedin.profile("eager-cdn", photo_url=url)
    tasks.enrich_profile.delay("eager-cdn")  # eager, as in `make run`: no worker to retry on
    profile = Profile.objects.get(handle="eager-cdn")
    assert profile.status == Profile.Status.BLOCKED and profile.failures == 1


def test_a_photo_the_host_refuses_is_not_retried_soon(linkedin):
    url = linkedin.photo("face.jpg")
    for path in (url.split("?")[0], url.split("?")[0].replace("100_100", "800_800")):
        linkedin.server.route(path.removeprefix(linkedin.server.url("").rstrip("/")), status=404, body=b"gone")
    linkedin.profile("refused", photo_url=url)
    profile = enrichment.enrich("refused", on_worker=True, photo_retries_left=3)
    assert profile.status == Profile.Status.BLOCKED and profile.failures == 1
