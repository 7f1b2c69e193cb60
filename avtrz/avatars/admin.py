import io
from functools import partial

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import ngettext
from PIL import Image, ImageDraw

from accounts.models import AuthenticatedHttpRequest, User
from avtrz.avatars import crops, imaging, purge, removal, tasks
from avtrz.avatars.cards import image_url
from avtrz.avatars.models import AvatarImage, CropChange, OptOut, OptOutChange, Profile, RemovalRequest
from avtrz.avatars.normalize import InvalidProfileInput, normalize_profile_input
from avtrz.avatars.removal_views import ProfileField
from avtrz.lib.adminkit import ReadOnlyAdmin, ReadOnlyInline, may_act_on


THUMBNAIL_SIZE = 64


def handle_search_term(search_term: str) -> str:
    """Support gets pasted profile URLs: search by the canonical handle the directory stores."""
    if "linkedin." in search_term.lower():
        try:
            return normalize_profile_input(search_term.strip(), None)
        except InvalidProfileInput:
            pass
    return search_term


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
    fields = readonly_fields = ("preview", "photo_version", "source_format", "face_detected", "created_at")
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
    readonly_fields = ["photo", "crop"]
    inlines = [AvatarImageInline]
    actions = ["refresh_now", "remove_and_opt_out"]

    @admin.display(description="Photo")
    def photo(self, obj: Profile) -> str:
        return thumbnail(obj.current_image, f"Photo of {obj.display_name}")

    @admin.display(description="Crop")
    def crop(self, obj: Profile) -> str:
        return crop_link(obj.current_image)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Profile], search_term: str):
        return super().get_search_results(request, queryset, handle_search_term(search_term))

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

    def has_remove_permission(self, request: HttpRequest) -> bool:
        return may_act_on(request, Profile)

    @admin.action(description="Remove photo and data, and opt out (asks for a reason)", permissions=["remove"])
    def remove_and_opt_out(self, request: AuthenticatedHttpRequest, queryset: QuerySet[Profile]):
        """Support's own-initiative removal: the same one step as a confirmed request."""
        handles = list(queryset.values_list("handle", flat=True))

        def remove(reason: str) -> None:
            for handle in handles:
                removal.remove_profile(handle, actor=request.user, reason=reason)
            self.message_user(request, _removed_message(len(handles)), messages.SUCCESS)

        return ask_reason(
            self, request, queryset, title="Remove these profiles' photos and data", button="Remove", apply=remove
        )


def _removed_message(count: int) -> str:
    return (
        ngettext(
            "Removed %d profile: its images answer 410, it is opted out and its files are being deleted.",
            "Removed %d profiles: their images answer 410, they are opted out and their files are being deleted.",
            count,
        )
        % count
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=2000)


class OptOutForm(ReasonForm):
    profile = ProfileField()

    field_order = ["profile", "reason"]


def ask_reason(model_admin, request: HttpRequest, queryset: QuerySet, *, title: str, button: str, apply):
    """An admin action that is audited with a reason: a form first, then `apply(reason)` on the selection."""
    form = ReasonForm(request.POST if "reason" in request.POST else None)
    if form.is_valid():
        apply(form.cleaned_data["reason"])
        return None
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.model._meta,
        "objects": queryset,
        "form": form,
        "button": button,
        "action": request.POST.get("action", ""),
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
    }
    return TemplateResponse(request, "admin/avatars/removal_reason.html", context)


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
        "crop",
        "links",
        "created_at",
    ]
    readonly_fields = ["preview", "crop", "links"]

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

    @admin.display(description="Crop")
    def crop(self, obj: AvatarImage) -> str:
        return crop_link(obj)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:image_id>/crop/", view(self.crop_view), name="avatars_avatarimage_crop"),
            path("<int:image_id>/crop/source.png", view(self.crop_source_view), name="avatars_avatarimage_crop_source"),
            *super().get_urls(),
        ]

    def _image(self, request: HttpRequest, image_id: int) -> AvatarImage:
        image = get_object_or_404(AvatarImage.objects.select_related("profile"), pk=image_id)
        if not self.has_view_permission(request, image):
            raise PermissionDenied
        return image

    def crop_view(self, request: AuthenticatedHttpRequest, image_id: int) -> HttpResponse:
        """Support's crop review: the source with its boxes, the five renditions, a manual crop."""
        image = self._image(request, image_id)
        may_act = may_act_on(request, AvatarImage)
        form = ManualCropForm(initial=ManualCropForm.initial_for(image))
        if request.method == "POST":
            if not may_act:
                raise PermissionDenied
            if request.POST.get("do") == "reset":
                if image.manual_box is not None:
                    crops.reset_crop(image, actor=request.user)
                    self.message_user(
                        request, "Back to the framing rule; the avatar was re-rendered.", messages.SUCCESS
                    )
                return HttpResponseRedirect(request.path)
            form = ManualCropForm(request.POST)
            if form.is_valid():
                try:
                    crops.set_manual_crop(image, form.box(), actor=request.user)
                except crops.CropError as exc:
                    form.add_error(None, str(exc))
                except (imaging.ImageError, OSError) as exc:
                    form.add_error(None, f"The source photo could not be read: {exc}")
                else:
                    self.message_user(request, "Manual crop saved; the avatar was re-rendered.", messages.SUCCESS)
                    return HttpResponseRedirect(request.path)
        renditions = [
            (size, image_url(digest, "webp"))
            for size in imaging.AVATAR_SIZES
            if (digest := image.rendition(size, "webp"))
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Crop of {image.profile.handle}",
            "opts": self.model._meta,
            "original": image,
            "image": image,
            "profile": image.profile,
            "is_current": image.profile.current_image_id == image.pk,
            "renditions": renditions,
            "form": form,
            "may_act": may_act,
            "changes": image.crop_changes.select_related("actor")[:20],
            "source_url": reverse("admin:avatars_avatarimage_crop_source", args=[image.pk]),
            "tight_box": image.crop_boxes.get("128"),
            "loose_box": image.crop_boxes.get("512"),
        }
        return TemplateResponse(request, "admin/avatars/avatarimage/crop.html", context)

    def crop_source_view(self, request: HttpRequest, image_id: int) -> HttpResponse:
        """The kept source photo, at most 720 px, with the face box and crop boxes drawn on it."""
        image = self._image(request, image_id)
        try:
            decoded = imaging.decode_image(crops.read_source(image))
        except (imaging.ImageError, OSError):
            raise Http404 from None
        response = HttpResponse(draw_boxes(decoded, image), content_type="image/png")
        response["Cache-Control"] = "private, no-store"
        return response


class ManualCropForm(forms.Form):
    """A square in source pixels: left and top edges and the side."""

    left = forms.IntegerField(min_value=0)
    top = forms.IntegerField(min_value=0)
    side = forms.IntegerField(min_value=crops.MIN_MANUAL_SIDE)

    @staticmethod
    def initial_for(image: AvatarImage) -> dict[str, int]:
        box = image.manual_box or image.crop_boxes.get("128")
        if not box:
            return {}
        return {"left": box[0], "top": box[1], "side": box[2] - box[0]}

    def box(self) -> tuple[int, int, int, int]:
        left, top, side = (self.cleaned_data[name] for name in ("left", "top", "side"))
        return left, top, left + side, top + side


PREVIEW_SIDE = 720
BOX_COLOURS = {"face": (40, 120, 255), "tight": (20, 170, 60), "loose": (255, 140, 0), "manual": (220, 20, 60)}


def draw_boxes(decoded: Image.Image, image: AvatarImage) -> bytes:
    """PNG of the source scaled to fit PREVIEW_SIDE with the face (blue), the 32-128 px crop
    (green), the 256-512 px crop (orange) and a manual crop (red) outlined."""
    preview = decoded.convert("RGB")
    scale = min(1.0, PREVIEW_SIDE / max(preview.size))
    if scale < 1.0:
        preview = preview.resize((round(preview.width * scale), round(preview.height * scale)))
    draw = ImageDraw.Draw(preview)
    width = max(2, round(max(preview.size) / 200))
    boxes = []
    if image.face_box:
        x, y, w, h = image.face_box
        boxes.append(("face", (x, y, x + w, y + h)))
    if image.manual_box:
        boxes.append(("manual", image.manual_box))
    else:
        for name, size in (("loose", "512"), ("tight", "128")):
            if image.crop_boxes.get(size):
                boxes.append((name, image.crop_boxes[size]))
    for name, box in boxes:
        left, top, right, bottom = (round(value * scale) for value in box)
        draw.rectangle((left, top, right - 1, bottom - 1), outline=BOX_COLOURS[name], width=width)
    buffer = io.BytesIO()
    preview.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def crop_link(image: AvatarImage | None) -> str:
    if image is None:
        return "—"
    note = "manual crop" if image.manual_box else f"framing rule {image.framing_version}"
    return format_html(
        '<a href="{}">Review or fix the crop</a> ({})', reverse("admin:avatars_avatarimage_crop", args=[image.pk]), note
    )


@admin.register(CropChange)
class CropChangeAdmin(ReadOnlyAdmin):
    """The audit trail of support's crop overrides."""

    list_display = ["created_at", "image", "action", "actor", "box_before", "box_after"]
    list_filter = ["action", "created_at"]
    search_fields = ["image__profile__handle", "actor__email"]
    list_select_related = ["image__profile", "actor"]


@admin.register(RemovalRequest)
class RemovalRequestAdmin(ReadOnlyAdmin):
    """The support queue of removal requests from the public page: confirmed ones wait for support."""

    list_display = ["created_at", "handle", "status", "email", "confirmed_at", "handled_by", "handled_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["handle", "email"]
    list_select_related = ["handled_by"]
    fields = ["handle", "status", "email", "reason", "created_at", "confirmed_at", "handled_by", "handled_at"]
    actions = ["remove", "dismiss"]

    def has_remove_permission(self, request: HttpRequest) -> bool:
        return may_act_on(request, RemovalRequest)

    has_dismiss_permission = has_remove_permission

    @admin.action(description="Remove photo and data, and opt out (confirmed requests)", permissions=["remove"])
    def remove(self, request: AuthenticatedHttpRequest, queryset: QuerySet[RemovalRequest]) -> None:
        confirmed = list(queryset.filter(status=RemovalRequest.Status.CONFIRMED))
        for found in confirmed:
            # An earlier request for the same handle may have been handled by this very loop.
            found.refresh_from_db(fields=["status"])
            if found.status == RemovalRequest.Status.CONFIRMED:
                reason = f"Request from {found.email}: {found.reason}"
                removal.remove_profile(found.handle, actor=request.user, reason=reason, request=found)
        if confirmed:
            self.message_user(request, _removed_message(len({found.handle for found in confirmed})), messages.SUCCESS)
        skipped = len(queryset) - len(confirmed)
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "Skipped %d request that is not confirmed (or already handled).",
                    "Skipped %d requests that are not confirmed (or already handled).",
                    skipped,
                )
                % skipped,
                messages.WARNING,
            )

    @admin.action(description="Dismiss (remove nothing)", permissions=["dismiss"])
    def dismiss(self, request: AuthenticatedHttpRequest, queryset: QuerySet[RemovalRequest]) -> None:
        count = removal.dismiss(queryset, actor=request.user)
        self.message_user(request, ngettext("Dismissed %d request.", "Dismissed %d requests.", count) % count)


@admin.register(OptOut)
class OptOutAdmin(ReadOnlyAdmin):
    """Handles never enriched or shown again. Lifting an opt-out is audited in the removals log."""

    list_display = ["handle", "created_at"]
    search_fields = ["handle"]
    search_help_text = "LinkedIn handle or profile URL."
    actions = ["restore"]

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[OptOut], search_term: str):
        return super().get_search_results(request, queryset, handle_search_term(search_term))

    def has_restore_permission(self, request: HttpRequest) -> bool:
        return may_act_on(request, OptOut)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return may_act_on(request, OptOut)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None) -> HttpResponse:
        """Support's own removal by pasted URL or username, whether or not the directory knows the profile."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = OptOutForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            assert isinstance(request.user, User)  # the admin lets only signed-in staff this far
            removal.remove_profile(form.cleaned_data["profile"], actor=request.user, reason=form.cleaned_data["reason"])
            self.message_user(request, _removed_message(1), messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:avatars_optout_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Remove a profile and opt it out",
            "opts": self.model._meta,
            "form": form,
        }
        return TemplateResponse(request, "admin/avatars/optout_add.html", context)

    @admin.action(description="Lift the opt-out (asks for a reason)", permissions=["restore"])
    def restore(self, request: AuthenticatedHttpRequest, queryset: QuerySet[OptOut]):
        handles = list(queryset.values_list("handle", flat=True))

        def lift(reason: str) -> None:
            for handle in handles:
                removal.restore(handle, actor=request.user, reason=reason)
            self.message_user(
                request,
                ngettext("Lifted %d opt-out.", "Lifted %d opt-outs.", len(handles)) % len(handles),
                messages.SUCCESS,
            )

        return ask_reason(self, request, queryset, title="Lift these opt-outs", button="Lift", apply=lift)


@admin.register(OptOutChange)
class OptOutChangeAdmin(ReadOnlyAdmin):
    """Who removed or restored which profile, when and why, and whether the stored files are gone."""

    list_display = ["created_at", "handle", "action", "actor", "purge", "purge_attempts", "purged_at"]
    list_filter = ["action", "purge", "created_at"]
    search_fields = ["handle", "actor__email"]
    list_select_related = ["actor"]
    fields = [
        "created_at",
        "handle",
        "action",
        "actor",
        "reason",
        "request",
        "purge",
        "purge_attempts",
        "purge_error",
        "purged_at",
        "stored_names",
    ]
    actions = ["retry_purge"]

    def has_retry_purge_permission(self, request: HttpRequest) -> bool:
        return may_act_on(request, OptOutChange)

    @admin.action(description="Retry deleting the stored files", permissions=["retry_purge"])
    def retry_purge(self, request: HttpRequest, queryset: QuerySet[OptOutChange]) -> None:
        pks = list(queryset.filter(pk__in=purge.unfinished_purges()).values_list("pk", flat=True))
        for pk in pks:
            transaction.on_commit(partial(tasks.queue_purge, pk))
        self.message_user(request, ngettext("Queued %d purge.", "Queued %d purges.", len(pks)) % len(pks))
