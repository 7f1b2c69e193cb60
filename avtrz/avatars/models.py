from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Profile(models.Model):
    """One LinkedIn profile in the directory, keyed by its canonical handle."""

    class Status(models.TextChoices):
        RESOLVED = "resolved", "Resolved"
        ENRICHING = "enriching", "Enriching"
        NOT_FOUND = "not_found", "Not found"
        # LinkedIn refused to answer (HTTP 999/429, a login wall): try again later, it is not "no photo".
        BLOCKED = "blocked", "Blocked, retrying"

    handle = models.CharField(max_length=100, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ENRICHING, db_index=True)
    name = models.CharField(max_length=200, blank=True)
    headline = models.CharField(max_length=300, blank=True)
    summary = models.TextField(blank=True)
    industry = models.CharField(max_length=200, blank=True)
    location = models.CharField(max_length=200, blank=True)
    open_to_work = models.BooleanField(null=True)
    source_photo_url = models.TextField(blank=True)
    photo_version = models.CharField(max_length=200, blank=True)
    photo_expires_at = models.DateTimeField(null=True, blank=True)
    current_image = models.ForeignKey("AvatarImage", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    failures = models.PositiveSmallIntegerField(default=0, help_text="Consecutive blocked or failed checks.")
    next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["handle"]

    def __str__(self) -> str:
        return self.handle

    @property
    def display_name(self) -> str:
        return self.name or self.handle


class AvatarImage(models.Model):
    """The renditions of one photo version of a profile, stored by content hash and kept forever,
    so every durable URL ever handed out keeps working after the photo changes."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="images")
    photo_version = models.CharField(max_length=200)
    source_hash = models.CharField(max_length=64, help_text="SHA-256 of the downloaded photo.")
    source_format = models.CharField(max_length=8)
    face_detected = models.BooleanField(default=False)
    # {"webp": {"32": "<sha256>", ...}, "png": {...}}: each rendition is stored as <sha256>.<format>.
    renditions = models.JSONField(default=dict)
    # Framing, in pixels of the source photo as displayed (EXIF orientation applied).
    source_width = models.PositiveIntegerField(null=True, blank=True)
    source_height = models.PositiveIntegerField(null=True, blank=True)
    face_box = models.JSONField(null=True, blank=True, help_text="[x, y, width, height] of the detected face.")
    # {"32": [left, top, right, bottom], ...}: the square each size was cut from.
    crop_boxes = models.JSONField(default=dict, blank=True)
    manual_box = models.JSONField(
        null=True, blank=True, help_text="[left, top, right, bottom] set by support; overrides the framing rule."
    )
    framing_version = models.PositiveSmallIntegerField(
        default=1, help_text="The framing rule the renditions were made with (1: largest square; 2: face framing)."
    )
    # Renditions replaced by a re-render, newest last: [{"at": ..., "reason": ..., "renditions": {...}}].
    # Their files are kept, so every URL handed out keeps working.
    previous_renditions = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["profile", "photo_version", "source_hash"], name="one_image_per_version")
        ]

    def __str__(self) -> str:
        return f"{self.profile.handle} {self.photo_version[:12]}"

    def rendition(self, size: int, fmt: str) -> str | None:
        """The content hash of one rendition, None when that format was not made."""
        return self.renditions.get(fmt, {}).get(str(size))


class CropChange(models.Model):
    """Audit trail of support's crop overrides and re-renders of one image."""

    class Action(models.TextChoices):
        MANUAL = "manual", "Manual crop set"
        RESET = "reset", "Back to the framing rule"

    image = models.ForeignKey(AvatarImage, on_delete=models.CASCADE, related_name="crop_changes")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    action = models.CharField(max_length=16, choices=Action.choices)
    box_before = models.JSONField(null=True, blank=True)
    box_after = models.JSONField(null=True, blank=True)
    renditions_before = models.JSONField(default=dict)
    renditions_after = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} on {self.image}"


class RemovalRequest(models.Model):
    """Someone asked, on the public removal page, for a profile's photo and data to be removed.

    It reaches the support queue only once confirmed from the link mailed to `email`; the token is
    kept as its SHA-256, so the database alone cannot confirm a request."""

    class Status(models.TextChoices):
        UNCONFIRMED = "unconfirmed", "Awaiting email confirmation"
        CONFIRMED = "confirmed", "Confirmed, waiting for support"
        REMOVED = "removed", "Removed"
        DISMISSED = "dismissed", "Dismissed"

    handle = models.CharField(max_length=100, db_index=True, help_text="Normalized LinkedIn handle.")
    email = models.EmailField()
    reason = models.TextField()
    token_hash = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNCONFIRMED, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Removal of {self.handle} asked by {self.email}"


class OptOut(models.Model):
    """A handle Avtrz never enriches or shows again, until support restores it (`OptOutChange`)."""

    handle = models.CharField(max_length=100, unique=True, help_text="Normalized LinkedIn handle.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "opt-out"

    def __str__(self) -> str:
        return self.handle


class OptOutChange(models.Model):
    """Audit trail of removals and restorations, and the state of each removal's storage purge."""

    class Action(models.TextChoices):
        REMOVED = "removed", "Removed and opted out"
        RESTORED = "restored", "Opt-out lifted"

    class Purge(models.TextChoices):
        NONE = "", "Nothing to purge"
        PENDING = "pending", "Deleting stored images"
        DONE = "done", "Stored images deleted"
        RETRYING = "retrying", "Storage failed, retrying"

    handle = models.CharField(max_length=100, db_index=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    reason = models.TextField()
    request = models.ForeignKey(RemovalRequest, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Storage names of the source photos and renditions to delete ("sources/<sha256>", "avatars/<sha256>.webp").
    stored_names = models.JSONField(default=list, blank=True)
    purge = models.CharField(max_length=16, choices=Purge.choices, default=Purge.NONE, blank=True)
    purge_attempts = models.PositiveSmallIntegerField(default=0)
    purge_error = models.TextField(blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "removal or restoration"
        verbose_name_plural = "removals log"

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {self.handle}"


class RemovedImage(models.Model):
    """A content hash whose files were removed: its durable URL answers 410 Gone, never again the photo."""

    content_hash = models.CharField(max_length=64, primary_key=True)
    change = models.ForeignKey(OptOutChange, on_delete=models.CASCADE, related_name="removed_images")

    def __str__(self) -> str:
        return self.content_hash
