"""Sign-up that does not say which emails have an account.

Every valid sign-up answers the same: "check your inbox". A new address gets an activation link
(the account exists, inactive, until it is followed); an address that already has an account gets a
"you already have an account" mail with sign-in and reset links instead, so only the mailbox's owner
learns anything. Coming from an invitation to that very address, the invitation link already proved
the mailbox, so the account is active at once.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import resolve, reverse
from django.urls.exceptions import Resolver404
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import User
from avtrz.lib import throttle


class ActivationTokenGenerator(PasswordResetTokenGenerator):
    """Like a reset token (expires after PASSWORD_RESET_TIMEOUT), dead once the account is active."""

    key_salt = "accounts.signup.ActivationTokenGenerator"

    def _make_hash_value(self, user, timestamp) -> str:
        return f"{user.pk}{user.password}{user.is_active}{timestamp}{user.email}"


activation_tokens = ActivationTokenGenerator()


def invitation_at(next_url: str):
    """The pending invitation `next_url` (a sign-up's `next`) points at, if any."""
    from workspaces.models import Invitation

    try:
        match = resolve(next_url.split("?", 1)[0]) if next_url else None
    except Resolver404:
        return None
    if match is None or match.view_name != "workspaces:invitation":
        return None
    found = Invitation.objects.for_token(match.kwargs["token"])
    return found if found and found.is_pending else None


def invitation_for(next_url: str, email: str):
    """The pending invitation `next_url` points at, if it was sent to `email`."""
    found = invitation_at(next_url)
    return found if found and found.email.lower() == email.lower() else None


def send_activation(user: User, next_url: str) -> None:
    path = reverse(
        "accounts:activate",
        kwargs={"uidb64": urlsafe_base64_encode(force_bytes(user.pk)), "token": activation_tokens.make_token(user)},
    )
    url = settings.PUBLIC_BASE_URL + path + (f"?{urlencode({'next': next_url})}" if next_url else "")
    body = render_to_string("emails/signup_activate.txt", {"email": user.email, "url": url})
    send_mail("Finish creating your Avtrz account", body, None, [user.email])


def send_already_registered(user: User) -> None:
    """At most one such mail per address and window, so sign-up cannot be used to flood a mailbox."""
    if throttle.hit("signup-existing", user.email.lower(), settings.PASSWORD_RESET_WINDOW_S).count > 1:
        return
    body = render_to_string(
        "emails/signup_existing.txt",
        {
            "email": user.email,
            "login_url": settings.PUBLIC_BASE_URL + reverse("accounts:login"),
            "reset_url": settings.PUBLIC_BASE_URL + reverse("accounts:password_reset"),
        },
    )
    send_mail("You already have an Avtrz account", body, None, [user.email])
