from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.http import HttpRequest

from accounts.models import User
from avtrz.lib import throttle


class SignUpForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name")
        labels = {"name": "Your name"}
        help_texts = {"name": "Optional. Shown to your teammates."}

    def clean_email(self) -> str:
        # Whether the address has an account is not said here: the view mails its owner instead.
        return self.cleaned_data["email"].strip().lower()

    def validate_unique(self) -> None:
        """Skip the email's uniqueness check, whose error would tell anyone the address has an account."""
        # ModelForm's own private helpers, which django-stubs does not declare.
        exclude = {*self._get_validation_exclusions(), "email"}  # type: ignore[attr-defined]
        try:
            self.instance.validate_unique(exclude=exclude)
        except forms.ValidationError as exc:
            self._update_errors(exc)  # type: ignore[attr-defined]


# The mixin below runs on an AuthenticationForm; only the type checker needs to see that base.
if TYPE_CHECKING:
    _SignInForm = AuthenticationForm
else:
    _SignInForm = object


class ThrottledSignIn(_SignInForm):
    """Failed sign-ins limited per (email, address) and per address; the owner can unlock by email.

    Counting per (email, address) rather than per email means a stranger who knows an email cannot
    lock its owner out: they only lock themselves out of it. The per-address cap stops one address from
    spraying guesses over many emails. An owner who shares an address with a guesser (an office, a
    carrier NAT) gets an unlock link by email (accounts.unlock) that lets their browser past both limits.
    """

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That email and password do not match an account. "
        "Just signed up? Follow the link in the email we sent you first.",
        "throttled": "Too many failed sign-in attempts. Try again in %(minutes)d minutes.",
        "throttled_unlock": "Too many failed sign-in attempts. Try again in %(minutes)d minutes. "
        "If this is your account, we have emailed you a link that unlocks sign-in at once.",
    }

    request: HttpRequest  # the sign-in views always pass it

    def clean(self):
        from accounts import unlock

        email = (self.cleaned_data.get("username") or "").strip().lower()
        ip = throttle.client_ip(self.request)
        window = settings.LOGIN_RATE_WINDOW_S
        grant = unlock.granted(self.request, email)
        if grant:
            limits = [("login-unlocked", grant, settings.LOGIN_RATE_LIMIT)]
        else:
            limits = [
                ("login-pair", f"{email}|{ip}", settings.LOGIN_RATE_LIMIT),
                ("login-ip", ip, settings.LOGIN_ADDRESS_RATE_LIMIT),
            ]
        for scope, ident, limit in limits:
            state = throttle.peek(scope, ident, window)
            if state.count >= limit:
                code = "throttled"
                if scope == "login-pair":
                    unlock.offer(email)
                    code = "throttled_unlock"
                raise forms.ValidationError(
                    self.error_messages[code],
                    code="throttled",
                    params={"minutes": max(1, round(state.retry_after / 60))},
                )
        try:
            return super().clean()
        except forms.ValidationError:
            for scope, ident, limit in limits:
                if throttle.hit(scope, ident, window).count == limit and scope == "login-pair":
                    unlock.offer(email)
            raise


class SignInForm(ThrottledSignIn, AuthenticationForm):
    """Email + password for the site's sign-in page."""


class AdminSignInForm(ThrottledSignIn, AdminAuthenticationForm):
    """The admin's sign-in, under the same limits as the site's (staff accounts are worth guessing)."""

    error_messages = {**AdminAuthenticationForm.error_messages, **ThrottledSignIn.error_messages}
    error_messages["invalid_login"] = AdminAuthenticationForm.error_messages["invalid_login"]
