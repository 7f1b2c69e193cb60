"""A removal deletes the photo from S3-compatible object storage (moto's server), as production
stores it, and the bucket answers for none of its objects afterwards."""

import pytest
import requests
from botocore.exceptions import ClientError

from avtrz.avatars import removal
from avtrz.avatars.directory import import_profile
from avtrz.avatars.models import OptOutChange
from tests.avatars.conftest import IMAGES
from tests.production import conftest as production


pytestmark = pytest.mark.django_db
# The production tests' S3 server and bucket fixtures.
s3_endpoint = production.s3_endpoint
bucket = production.bucket


def test_removal_deletes_the_source_and_every_rendition_from_the_bucket(
    bucket, staff, client, pk, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        eileen = import_profile(
            {"handle": "eileen-collins", "name": "Eileen Collins", "photo_file": "face.jpg"}, base_dir=IMAGES
        )
    # A PNG made later is part of the photo too.
    png = client.get("/v1/avatar", {"key": pk, "username": "eileen-collins", "size": "64", "format": "png"})
    assert png.status_code == 302
    names, _ = removal.stored_names(eileen.images.all())
    assert any(name.endswith(".png") for name in names) and any(name.startswith("sources/") for name in names)
    for name in names:
        bucket.head_object(Bucket=bucket.bucket_name, Key=name)
    assert requests.get(png["Location"], timeout=10).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        change = removal.remove_profile("eileen-collins", actor=staff, reason="Request by email.")

    for name in names:
        with pytest.raises(ClientError):
            bucket.head_object(Bucket=bucket.bucket_name, Key=name)
    assert requests.get(png["Location"], timeout=10).status_code in (403, 404)
    change.refresh_from_db()
    assert change.purge == OptOutChange.Purge.DONE
