"""Images in S3-compatible object storage (moto's server on 127.0.0.1), as production stores them."""

import io
import subprocess
import sys

import pytest
import requests
from django.core.files.storage import default_storage
from PIL import Image

from avtrz.avatars.directory import import_profile
from avtrz.lib.storage import IMMUTABLE, ImageStorage
from tests import services
from tests.avatars.conftest import IMAGES


pytestmark = pytest.mark.django_db


@pytest.fixture
def eileen(bucket, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return import_profile(
            {"handle": "eileen-collins", "name": "Eileen Collins", "photo_file": "face.jpg"}, base_dir=IMAGES
        )


def test_the_storages_setting_selects_the_bucket(bucket):
    # default_storage is lazy and reset when STORAGES changes, so the override above is what serves.
    assert default_storage.bucket_name == bucket.bucket_name
    assert isinstance(default_storage._wrapped, ImageStorage)
    assert not default_storage.exists("avatars/nothing.webp")


def test_import_stores_immutable_typed_objects_in_the_bucket(bucket, eileen):
    image = eileen.current_image
    assert set(image.renditions) == {"webp"}
    for digest in image.renditions["webp"].values():
        head = bucket.head_object(Bucket=bucket.bucket_name, Key=f"avatars/{digest}.webp")
        assert head["CacheControl"] == IMMUTABLE
        assert head["ContentType"] == "image/webp"
    source = bucket.head_object(Bucket=bucket.bucket_name, Key=f"sources/{image.source_hash}")
    assert source["CacheControl"] == IMMUTABLE
    assert source["ContentLength"] == (IMAGES / "face.jpg").stat().st_size


def test_png_renditions_made_later_are_typed_too(bucket, eileen, client, pk):
    response = client.get("/v1/avatar", {"key": pk, "username": "eileen-collins", "size": "64", "format": "png"})
    assert response.status_code == 302 and response["Location"].endswith(".png")
    digest = response["Location"].rsplit("/", 1)[1].removesuffix(".png")
    head = bucket.head_object(Bucket=bucket.bucket_name, Key=f"avatars/{digest}.png")
    assert (head["ContentType"], head["CacheControl"]) == ("image/png", IMMUTABLE)


def test_avatar_redirects_to_the_bucket_and_the_object_is_served_from_it(bucket, eileen, client, pk, settings):
    response = client.get("/v1/avatar", {"key": pk, "username": "eileen-collins", "size": "256"})
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(settings.AVTRZ_IMAGE_BASE_URL) and location.endswith(".webp")

    image = requests.get(location, timeout=10)
    assert image.status_code == 200
    assert image.headers["Content-Type"] == "image/webp"
    assert image.headers["Cache-Control"] == IMMUTABLE
    assert Image.open(io.BytesIO(image.content)).size == (256, 256)
    source = f"{settings.AVTRZ_IMAGE_BASE_URL.removesuffix('avatars/')}sources/{eileen.current_image.source_hash}"
    assert requests.get(source, timeout=10).status_code == 403


def test_img_streams_from_the_bucket_without_a_cdn(bucket, eileen, client):
    digest = eileen.current_image.renditions["webp"]["128"]
    response = client.get(f"/img/{digest}.webp")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    assert response["Cache-Control"] == IMMUTABLE
    body = b"".join(response.streaming_content)
    stored = bucket.get_object(Bucket=bucket.bucket_name, Key=f"avatars/{digest}.webp")["Body"].read()
    assert body == stored
    assert client.get(f"/img/{'0' * 64}.webp").status_code == 404


SHOW_STORAGE = """
import django
django.setup()
from django.core.files.storage import default_storage
bucket = default_storage.bucket_name  # sets the lazy object up
print(type(default_storage._wrapped).__name__, bucket, default_storage.endpoint_url)
"""


def _settings_process(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SHOW_STORAGE],
        cwd=services.ROOT,
        env={"PATH": "/usr/bin:/bin", "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "avtrz.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_bucket_in_the_environment_selects_object_storage():
    result = _settings_process(AWS_STORAGE_BUCKET_NAME="avatars-prod", AWS_S3_ENDPOINT_URL="https://s3.example")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ImageStorage", "avatars-prod", "https://s3.example"]


def test_s3_storage_without_a_bucket_is_refused():
    result = _settings_process(AVTRZ_STORAGE="s3")
    assert result.returncode != 0
    assert "AVTRZ_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME" in result.stderr
