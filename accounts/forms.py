from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

from accounts.models import User
from avtrz import throttle


class SignUpForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name")
        labels = {"name": "Your name"}
        help_texts = {"name": "Optional. Shown to your teammates."}

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email already exists. Sign in instead.")
        return email


class SignInForm(AuthenticationForm):
    """Email + password, with failed attempts limited per email and per client address."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That email and password do not match an account.",
        "throttled": "Too many failed sign-in attempts. Try again in %(minutes)d minutes.",
    }

    def clean(self):
        email = (self.cleaned_data.get("username") or "").strip().lower()
        idents = [("login-email", email), ("login-ip", throttle.client_ip(self.request))]
        window = settings.LOGIN_RATE_WINDOW_S
        for scope, ident in idents:
            state = throttle.peek(scope, ident, window)
            if state.count >= settings.LOGIN_RATE_LIMIT:
                raise forms.ValidationError(
                    self.error_messages["throttled"],
                    code="throttled",
                    params={"minutes": max(1, round(state.retry_after / 60))},
                )
        try:
            return super().clean()
        except forms.ValidationError:
            for scope, ident in idents:
                throttle.hit(scope, ident, window)
            raise
