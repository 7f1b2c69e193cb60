"""The cached view of a profile that the request path answers from (see `avtrz.lib.hotcache`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from avtrz.avatars.models import AvatarImage, OptOut, Profile
from avtrz.lib import hotcache


CARD_TTL = 7 * 24 * 3600
# The status of a handle on the opt-out list (`avatars.removal`): no photo, no data, never enriched.
OPTED_OUT = "opted_out"


@dataclass(frozen=True)
class Card:
    handle: str
    status: str
    name: str = ""
    # {"webp": {"32": "<sha256>", ...}, "png": {...}} of the current image; empty when none.
    renditions: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def is_resolved(self) -> bool:
        return self.status == Profile.Status.RESOLVED and bool(self.renditions)

    @property
    def label(self) -> str:
        """What the monogram fallback is drawn from."""
        return self.name or self.handle

    def rendition(self, size: int, fmt: str) -> str | None:
        return self.renditions.get(fmt, {}).get(str(size))


def card_key(handle: str) -> str:
    return f"card:{handle}"


def cached_card(handle: str, local_only: bool = False) -> Card | None:
    """The cached card (`local_only`: only without a network round trip, see `hotcache.get`)."""
    return hotcache.get(card_key(handle), local_only=local_only)


def card_for(profile: Profile, image: AvatarImage | None) -> Card:
    return Card(
        handle=profile.handle,
        status=profile.status,
        name=profile.name,
        renditions=image.renditions if image and profile.status == Profile.Status.RESOLVED else {},
    )


def remember(card: Card) -> Card:
    hotcache.set(card_key(card.handle), card, CARD_TTL)
    return card


def load_card(handle: str) -> Card | None:
    """The card from the cache, else from the directory (then cached); None for an unknown handle."""
    card, version = hotcache.read(card_key(handle))
    if card is not None:
        return card
    profile = Profile.objects.select_related("current_image").filter(handle=handle).first()
    if profile is not None:
        card = card_for(profile, profile.current_image)
    elif OptOut.objects.filter(handle=handle).exists():
        card = Card(handle=handle, status=OPTED_OUT)
    else:
        return None
    # Not written back if the card changed (an enrichment, a removal, a restore) while it was read.
    hotcache.set_if_current(card_key(handle), card, CARD_TTL, version)
    return card


def image_url(content_hash: str, fmt: str) -> str:
    """The durable, immutable URL of one stored rendition."""
    return f"{settings.AVTRZ_IMAGE_BASE_URL}{content_hash}.{fmt}"
