"""Rendering a kept source photo into its avatar sizes, by the framing rule or by support's manual crop.

Every rendition is stored under its content hash and never deleted, so a re-render (a new framing
rule, a manual crop, a reset) only adds files and points the image at them: the URLs handed out
before keep working, and the replaced set is kept in ``AvatarImage.previous_renditions``.
Boxes are stored in pixels of the source photo as displayed (EXIF orientation applied), whatever
scale it was decoded at.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from avtrz.avatars import imaging
from avtrz.avatars.cards import card_for, remember
from avtrz.avatars.models import AvatarImage, CropChange, Profile


if TYPE_CHECKING:  # who acted, for annotations: the engine depends on no app
    from accounts.models import User


log = logging.getLogger(__name__)

MIN_MANUAL_SIDE = 16


class CropError(ValueError):
    """A manual crop box that cannot be used; ``str(exc)`` says why."""


@dataclass(frozen=True)
class Rendered:
    renditions: dict[str, dict[str, str]]
    source_format: str
    width: int
    height: int
    face_box: list[int] | None
    crop_boxes: dict[str, list[int]]
    framing_version: int


def save_blob(name: str, data: bytes) -> None:
    """Store `data` under its content-hash `name`, once. A file of another size under that name is what a
    worker killed mid-write leaves behind: the re-delivered task replaces it rather than keep it forever."""
    if default_storage.exists(name):
        if default_storage.size(name) == len(data):
            return
        default_storage.delete(name)
    default_storage.save(name, ContentFile(data))


def read_source(image: AvatarImage) -> bytes:
    with default_storage.open(f"sources/{image.source_hash}") as source:
        return source.read()


def check_manual_box(box: Sequence[int], width: int, height: int) -> imaging.Box:
    """``box`` as a (left, top, right, bottom) square inside the photo, or :class:`CropError`."""
    try:
        left, top, right, bottom = (int(value) for value in box)
    except (TypeError, ValueError):
        raise CropError("a crop box is four whole numbers: left, top, right, bottom") from None
    side = right - left
    if side != bottom - top:
        raise CropError("the crop box must be a square")
    if side < MIN_MANUAL_SIDE:
        raise CropError(f"the crop box must be at least {MIN_MANUAL_SIDE} px wide")
    if left < 0 or top < 0 or right > width or bottom > height:
        raise CropError(f"the crop box must lie inside the {width}x{height} photo")
    return left, top, right, bottom


def render_source(
    data: bytes,
    *,
    manual_box: Sequence[int] | None = None,
    face_box: Sequence[int] | None = None,
    formats: Iterable[str] | None = None,
) -> Rendered:
    """Decode, frame (or cut ``manual_box``), encode and store every size of one source photo.

    ``formats`` defaults to WEBP, plus PNG for PNG sources. With ``manual_box`` the photo decodes
    at full size (the box is in its pixels), no detection runs and ``face_box`` is kept as given.
    """
    if manual_box is not None:
        image = imaging.decode_image(data)
        box = check_manual_box(manual_box, *image.size)
        boxes = dict.fromkeys(imaging.AVATAR_SIZES, box)
        width, height = image.size
        stored_boxes, stored_face = boxes, list(face_box) if face_box else None
    else:
        image, face = imaging.decode_and_detect(data)
        boxes = imaging.framing_boxes(*image.size, face)
        width, height = imaging.displayed_size(data)
        ratio = width / image.width
        stored_boxes = {size: imaging.scale_box(b, ratio, width, height) for size, b in boxes.items()}
        stored_face = [round(value * ratio) for value in face] if face else None
    formats = tuple(formats or (("webp", "png") if image.format == "PNG" else ("webp",)))
    names: dict[str, dict[str, str]] = {}
    for (size, fmt), blob in imaging.render_avatar(image, box=boxes, formats=formats).items():
        digest = imaging.content_hash(blob)
        save_blob(f"avatars/{digest}.{fmt}", blob)
        names.setdefault(fmt, {})[str(size)] = digest
    return Rendered(
        renditions=names,
        source_format=(image.format or "").lower(),
        width=width,
        height=height,
        face_box=stored_face,
        crop_boxes={str(size): list(b) for size, b in sorted(stored_boxes.items())},
        framing_version=imaging.FRAMING_VERSION,
    )


def _apply(image: AvatarImage, rendered: Rendered, *, reason: str) -> AvatarImage:
    """Point ``image`` at ``rendered``, keeping the replaced renditions in its history, and refresh
    the profile's cached card once committed when this is its current image."""
    if image.renditions and rendered.renditions != image.renditions:
        entry = {"at": timezone.now().isoformat(), "reason": reason, "renditions": image.renditions}
        image.previous_renditions = [*image.previous_renditions, entry]
    image.renditions = rendered.renditions
    image.source_width, image.source_height = rendered.width, rendered.height
    image.face_box = rendered.face_box
    image.face_detected = rendered.face_box is not None
    image.crop_boxes = rendered.crop_boxes
    image.framing_version = rendered.framing_version
    image.save()
    transaction.on_commit(partial(_refresh_card, image.pk))
    return image


def _refresh_card(image_pk: int) -> None:
    profile = Profile.objects.select_related("current_image").filter(current_image_id=image_pk).first()
    if profile is not None:
        remember(card_for(profile, profile.current_image))


def rerender(image: AvatarImage, *, reason: str = "framing rule") -> AvatarImage:
    """Render ``image`` again from its kept source: by its manual box if support set one, else by
    the current framing rule. Keeps the formats it had."""
    rendered = render_source(
        read_source(image),
        manual_box=image.manual_box,
        face_box=image.face_box,
        formats=tuple(image.renditions) or None,
    )
    return _apply(image, rendered, reason=reason)


def add_formats(image: AvatarImage, formats: Iterable[str]) -> AvatarImage:
    """Renditions in more formats (PNG on first request), cut exactly as the existing ones."""
    wanted = tuple(f for f in formats if f not in image.renditions)
    if not wanted:
        return image
    rendered = render_source(read_source(image), manual_box=image.manual_box, face_box=image.face_box, formats=wanted)
    image.renditions = {**image.renditions, **rendered.renditions}
    image.save(update_fields=["renditions"])
    transaction.on_commit(partial(_refresh_card, image.pk))
    return image


def outdated_images():
    """Profiles' current images made with an older framing rule, without a manual crop."""
    current = Profile.objects.filter(current_image__isnull=False).values("current_image")
    return AvatarImage.objects.filter(
        pk__in=current, manual_box__isnull=True, framing_version__lt=imaging.FRAMING_VERSION
    ).order_by("pk")


def rerender_outdated(*, handles: Sequence[str] = (), force: bool = False, limit: int | None = None) -> tuple[int, int]:
    """Re-render current images made with an older rule (``force``: every current image without a
    manual crop). Returns (re-rendered, failed); one bad source does not stop the run."""
    if force:
        current = Profile.objects.filter(current_image__isnull=False).values("current_image")
        images = AvatarImage.objects.filter(pk__in=current, manual_box__isnull=True).order_by("pk")
    else:
        images = outdated_images()
    if handles:
        images = images.filter(profile__handle__in=handles)
    if limit:
        images = images[:limit]
    done = failed = 0
    for image in images.select_related("profile").iterator():
        try:
            with transaction.atomic():
                rerender(image)
        except (imaging.ImageError, OSError) as exc:
            failed += 1
            log.warning("could not re-render %s: %s", image, exc)
        else:
            done += 1
    return done, failed


def set_manual_crop(image: AvatarImage, box: Sequence[int], *, actor: User | None) -> AvatarImage:
    """Support's crop override: every size cut from ``box``, audited. It stays until the source
    photo changes (a new photo is a new image) or support resets it."""
    with transaction.atomic():
        image = AvatarImage.objects.select_for_update().get(pk=image.pk)
        before_box, before = image.manual_box, image.renditions
        data = read_source(image)
        rendered = render_source(data, manual_box=box, face_box=image.face_box, formats=tuple(image.renditions) or None)
        image.manual_box = list(rendered.crop_boxes[str(imaging.AVATAR_SIZES[0])])
        _apply(image, rendered, reason="manual crop")
        CropChange.objects.create(
            image=image,
            actor=actor,
            action=CropChange.Action.MANUAL,
            box_before=before_box,
            box_after=image.manual_box,
            renditions_before=before,
            renditions_after=image.renditions,
        )
    return image


def reset_crop(image: AvatarImage, *, actor: User | None) -> AvatarImage:
    """Drop the manual crop and render by the framing rule again, audited."""
    with transaction.atomic():
        image = AvatarImage.objects.select_for_update().get(pk=image.pk)
        before_box, before = image.manual_box, image.renditions
        image.manual_box = None
        rerender(image, reason="crop reset")
        CropChange.objects.create(
            image=image,
            actor=actor,
            action=CropChange.Action.RESET,
            box_before=before_box,
            box_after=None,
            renditions_before=before,
            renditions_after=image.renditions,
        )
    return image
