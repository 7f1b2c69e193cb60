"""Loading profiles into the directory in bulk (import command, demo data)."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction
from django.db.models import Field
from django.utils import timezone

from avtrz.avatars import enrichment, imaging, linkedin
from avtrz.avatars.cards import card_for, remember
from avtrz.avatars.models import OptOut, Profile
from avtrz.avatars.normalize import InvalidProfileInput, normalize_profile_input
from avtrz.lib import safe_http


TEXT_FIELDS = ("name", "headline", "summary", "industry", "location")


class ImportError_(ValueError):  # noqa: N801 (the builtin ImportError means something else)
    """A row that cannot be imported; the message says why."""


def import_profile(row: dict, *, base_dir: Path) -> Profile:
    """Create or update one profile from an import row, storing its photo if it has one."""
    if "_error" in row:
        raise ImportError_(row["_error"])
    try:
        handle = normalize_profile_input(row.get("linkedin_url") or None, row.get("handle") or row.get("username"))
    except InvalidProfileInput as exc:
        raise ImportError_(str(exc)) from None
    if OptOut.objects.filter(handle=handle).exists():
        raise ImportError_(f"{handle} asked to be removed from Avtrz (opt-out list); only support can restore it")
    photo = _photo_bytes(row, base_dir)
    with transaction.atomic():
        profile, _ = Profile.objects.select_for_update().get_or_create(handle=handle)
        for field in TEXT_FIELDS:
            if row.get(field):
                model_field = Profile._meta.get_field(field)
                assert isinstance(model_field, Field)
                setattr(profile, field, str(row[field])[: model_field.max_length or None])
        if row.get("open_to_work") not in (None, ""):
            profile.open_to_work = str(row["open_to_work"]).strip().lower() in {"1", "true", "yes"}
        if photo is not None:
            data, version = photo
            try:
                profile.current_image = enrichment.store_image(profile, data, version)
            except imaging.ImageError as exc:
                raise ImportError_(f"photo: {exc}") from None
            profile.photo_version = version
            profile.status = Profile.Status.RESOLVED
        elif profile.current_image_id is None:
            # Known by name but without a photo: serve the monogram now, look for a photo soon.
            profile.status = Profile.Status.RESOLVED if profile.name else Profile.Status.ENRICHING
            profile.next_check_at = timezone.now()
        profile.checked_at = timezone.now()
        profile.save()
        transaction.on_commit(lambda: remember(card_for(profile, profile.current_image)))
    return profile


def _photo_bytes(row: dict, base_dir: Path) -> tuple[bytes, str] | None:
    if row.get("photo_file"):
        path = (base_dir / row["photo_file"]).resolve()
        if not path.is_relative_to(base_dir.resolve()) or not path.is_file():
            raise ImportError_(f"photo_file {row['photo_file']!r} is not a file next to the import file")
        data = path.read_bytes()
        return data, f"file:{imaging.content_hash(data)}"
    if row.get("photo_url"):
        url = linkedin.upgrade_photo_url(row["photo_url"])
        try:
            fetched = enrichment.fetch_photo(url)
        except safe_http.FetchError as exc:
            raise ImportError_(f"photo_url: {exc}") from None
        return fetched, linkedin.photo_version(url)
    return None
