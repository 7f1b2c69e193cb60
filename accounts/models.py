from __future__ import annotations

import uuid
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.http import HttpRequest
from django.utils import timezone

from accounts.publishers import Publisher, recognise
from avtrz.lib.validators import no_control_characters


class UserManager(BaseUserManager["User"]):
    """Users sign in with their email address; there is no separate username."""

    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra: Any) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        if not extra["is_staff"] or not extra["is_superuser"]:
            raise ValueError("A superuser must have is_staff and is_superuser set.")
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, username: str | None) -> User:
        # Emails are stored lower-cased; sign-in is case-insensitive to match.
        return self.get(email__iexact=username)


class User(AbstractUser):
    username = None  # type: ignore[assignment]
    first_name = None  # type: ignore[assignment]
    last_name = None  # type: ignore[assignment]
    email = models.EmailField("email address", unique=True)
    # One name field: first/last does not fit how names work around the world.
    name = models.CharField(max_length=150, blank=True, validators=[no_control_characters])

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    # Django's way for a custom user (a BaseUserManager subclass); django-stubs insists on auth's UserManager.
    objects: ClassVar[UserManager] = UserManager()  # type: ignore[assignment]

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name.split(" ")[0] if self.name else self.email


class AuthenticatedHttpRequest(HttpRequest):
    """The request of a page only a signed-in user reaches (login_required views, the admin), for
    annotations: its `user` is a User, never AnonymousUser."""

    user: User


class ConnectionQuerySet(models.QuerySet["Connection"]):
    def active(self) -> ConnectionQuerySet:
        return self.filter(revoked_at__isnull=True)


class Connection(models.Model):
    """An AI client a user authorized on the consent screen, bound to the workspace they chose.

    One row per (user, client, workspace). Every grant and token issued for it points here
    through a ``ConnectionLink``, so the workspace a token acts for is one join away and
    revoking the connection can find every credential at once.
    """

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="oauth_connections")
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="oauth_connections")
    application = models.ForeignKey(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL, on_delete=models.CASCADE, related_name="avtrz_connections"
    )
    scope = models.TextField(blank=True, help_text="Scopes granted at the latest consent, space separated.")
    # What the connection is recognised by: a client may register someone else's redirect URI beside
    # its own, so the list it registered proves nothing; where its code actually went does.
    redirect_uri = models.TextField(
        blank=True,
        help_text="Where the latest consent sent the authorization code. Blank when unknown (connections "
        "made before it was recorded), which shows as unverified.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, help_text="Last time tokens were issued.")
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["user", "application", "workspace"], name="one_connection_per_client")
        ]

    def __str__(self) -> str:
        return f"{self.application} for {self.user} in {self.workspace}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def publisher(self) -> Publisher:
        """Who is behind the connection, recognised from the redirect URI its latest code went to."""
        return recognise(self.redirect_uri, self.application.name)

    @property
    def redirect_host(self) -> str:
        """Where its codes go, short: ``claude.ai``, ``127.0.0.1:53682``, ``cursor://anysphere.cursor-mcp``;
        empty when unknown."""
        try:
            parts = urlsplit(self.redirect_uri)
            port = parts.port
        except ValueError:
            return ""
        if not parts.scheme or not parts.hostname:
            return ""
        host = parts.hostname + (f":{port}" if port else "")
        return host if parts.scheme == "https" else f"{parts.scheme}://{host}"


class ConnectionLink(models.Model):
    """Ties exactly one DOT grant, access token or refresh token to its connection.

    A side table rather than swapped DOT models: the toolkit's models and migrations stay
    stock, and a token's link (and so its workspace) disappears with the token.
    """

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="links")
    grant = models.OneToOneField(
        settings.OAUTH2_PROVIDER_GRANT_MODEL, on_delete=models.CASCADE, null=True, related_name="connection_link"
    )
    access_token = models.OneToOneField(
        settings.OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL, on_delete=models.CASCADE, null=True, related_name="connection_link"
    )
    refresh_token = models.OneToOneField(
        settings.OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL,
        on_delete=models.CASCADE,
        null=True,
        related_name="connection_link",
    )
    # The authorization code a token was first issued from (SHA-256, hex), so that a replayed code
    # can revoke every token that came from it (RFC 6749 §4.1.2), including the rotations since.
    code_digest = models.CharField(max_length=64, blank=True, db_index=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(grant__isnull=False, access_token__isnull=True, refresh_token__isnull=True)
                    | models.Q(grant__isnull=True, access_token__isnull=False, refresh_token__isnull=True)
                    | models.Q(grant__isnull=True, access_token__isnull=True, refresh_token__isnull=False)
                ),
                name="connection_link_exactly_one_credential",
            )
        ]

    def __str__(self) -> str:
        return f"Link #{self.pk} to connection #{self.connection_id}"
