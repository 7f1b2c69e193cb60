"""Object storage for images (S3 API), selected in settings when a bucket is configured."""

from __future__ import annotations

from pathlib import PurePosixPath

from storages.backends.s3 import S3Storage


IMMUTABLE = "public, max-age=31536000, immutable"
# Python 3.11's mimetypes does not know .webp, and an object's Content-Type is what a CDN serves.
CONTENT_TYPES = {".webp": "image/webp", ".png": "image/png"}


class ImageStorage(S3Storage):
    """Every object is named by its content hash and never rewritten, so it may be cached forever."""

    def get_object_parameters(self, name: str) -> dict:
        params = super().get_object_parameters(name)
        params.setdefault("CacheControl", IMMUTABLE)
        content_type = CONTENT_TYPES.get(PurePosixPath(name).suffix)
        if content_type:
            params.setdefault("ContentType", content_type)
        return params
