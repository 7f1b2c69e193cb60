from functools import partial

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.translation import ngettext

from avtrz.adminkit import ReadOnlyAdmin, ReadOnlyInline, may_act_on
from avtrz.avatars import tasks
from avtrz.avatars.cards import image_url
from avtrz.avatars.models import AvatarImage, Profile
from avtrz.avatars.normalize import InvalidProfileInput, normalize_profile_input


THUMBNAIL_SIZE = 64


def thumbnail(image: AvatarImage | None, alt: str) -> str:
    """The image's 64 px WEBP rendition, from the same durable URL customers get."""
    digest = image.rendition(THUMBNAIL_SIZE, "webp") if image else None
    if not digest:
        return "—"
    return format_html(
        '<img src="{}" width="{}" height="{}" alt="{}" loading="lazy">',
        image_url(digest, "webp"),
        THUMBNAIL_SIZE,
        THUMBNAIL_SIZE,
        alt,
    )


class AvatarImageInline(ReadOnlyInline):
    model = AvatarImage
    fields = ["preview", "photo_version", "source_format", "face_detected", "created_at"]
    readonly_fields = fields
    show_change_link = True

    @admin.display(description="Image")
    def preview(self, obj: AvatarImage) -> str:
        return thumbnail(obj, f"Photo version {obj.photo_version}")


@admin.register(Profile)
class ProfileAdmin(ReadOnlyAdmin):
    """The directory, as enrichment wrote it. Fixing a profile means re-fetching it: "Refresh now".

    Edits here would not reach the cached card the API answers from, hence read-only.
    """

    list_display = ["photo", "handle", "name", "status", "failures", "checked_at", "next_check_at", "updated_at"]
    list_display_links = ["photo", "handle"]
    list_filter = ["status", "open_to_work", "checked_at", "created_at"]
    search_fields = ["handle", "name"]
    search_help_text = "LinkedIn handle, profile URL or name."
    list_select_related = ["current_image"]
    readonly_fields = ["photo"]
    inlines = [AvatarImageInline]
    actions = ["refresh_now"]

    @admin.display(description="Photo")
    def photo(self, obj: Profile) -> str:
        return thumbnail(obj.current_image, f"Photo of {obj.display_name}")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Profile], search_term: str):
        # Support gets pasted profile URLs: search by the canonical handle the directory stores.
        if "linkedin." in search_term.lower():
            try:
                search_term = normalize_profile_input(search_term.strip(), None)
            except InvalidProfileInput:
                pass
        return super().get_search_results(request, queryset, search_term)

    def has_refresh_permission(self, request: HttpRequest) -> bool:
        return may_act_on(request, Profile)

    @admin.action(description="Refresh now (re-fetch the profile and its photo)", permissions=["refresh"])
    def refresh_now(self, request: HttpRequest, queryset: QuerySet[Profile]) -> None:
        handles = list(queryset.values_list("handle", flat=True))
        for handle in handles:
            # After commit, so a worker never races this request's transaction.
            transaction.on_commit(partial(tasks.enrich_profile.delay, handle))
        self.message_user(
            request,
            ngettext("Queued a refresh of %d profile.", "Queued a refresh of %d profiles.", len(handles))
            % len(handles),
            messages.SUCCESS,
        )


@admin.register(AvatarImage)
class AvatarImageAdmin(ReadOnlyAdmin):
    list_display = ["preview", "profile", "photo_version", "source_format", "face_detected", "created_at"]
    list_display_links = ["preview", "profile"]
    list_filter = ["face_detected", "source_format", "created_at"]
    search_fields = ["profile__handle", "source_hash"]
    list_select_related = ["profile"]
    fields = [
        "preview",
        "profile",
        "photo_version",
        "source_hash",
        "source_format",
        "face_detected",
        "links",
        "created_at",
    ]
    readonly_fields = ["preview", "links"]

    @admin.display(description="Image")
    def preview(self, obj: AvatarImage) -> str:
        return thumbnail(obj, f"Photo of {obj.profile.handle}")

    @admin.display(description="Renditions")
    def links(self, obj: AvatarImage) -> str:
        return format_html_join(
            ", ",
            '<a href="{}">{} {}</a>',
            (
                (image_url(digest, fmt), fmt.upper(), f"{size} px")
                for fmt, sizes in sorted(obj.renditions.items())
                for size, digest in sorted(sizes.items(), key=lambda item: int(item[0]))
            ),
        )
