"""The public privacy page and the photo removal request flow (see `avatars.removal`).

No account is needed: the email given confirms the request, and support acts on confirmed requests
only. Every valid request gets the same answer ("check your inbox"), whatever is or is not on file
for the profile, so the page says nothing about who is in the directory.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_safe

from avtrz.avatars import removal
from avtrz.avatars.normalize import InvalidProfileInput, normalize_profile_input
from avtrz.lib import throttle


REASON_MAX = 2000


class ProfileField(forms.CharField):
    """A pasted LinkedIn profile URL or a username, cleaned to the normalized handle."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("label", "LinkedIn profile URL or username")
        kwargs.setdefault("help_text", "For example https://www.linkedin.com/in/janedoe or janedoe.")
        super().__init__(max_length=300, **kwargs)

    def clean(self, value) -> str:
        text = super().clean(value).strip()
        is_url = "/" in text or "linkedin." in text.lower()
        try:
            return normalize_profile_input(text if is_url else None, None if is_url else text)
        except InvalidProfileInput as exc:
            message = str(exc).replace("linkedin_url", "The profile URL").replace("username", "The username")
            raise forms.ValidationError(message[0].upper() + message[1:]) from None


class RemovalRequestForm(forms.Form):
    profile = ProfileField()
    email = forms.EmailField(
        label="Your email", help_text="We send a confirmation link here; nothing happens until it is followed."
    )
    reason = forms.CharField(
        label="Reason",
        max_length=REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="For example: this is me and I do not want my photo shown.",
    )

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()


def _context(**extra) -> dict:
    return {
        "confirm_days": removal.CONFIRM_WITHIN.days,
        "handled_within_days": removal.HANDLED_WITHIN_DAYS,
        "support_email": settings.AVTRZ_SUPPORT_EMAIL,
        **extra,
    }


@require_safe
def privacy(request: HttpRequest) -> HttpResponse:
    return render(request, "removal/privacy.html", _context())


@require_http_methods(["GET", "HEAD", "POST"])
def request_form(request: HttpRequest) -> HttpResponse:
    form = RemovalRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            removal.request_removal(
                data["profile"], data["email"], data["reason"], client_ip=throttle.client_ip(request)
            )
        except removal.RequestRefused as exc:
            form.add_error(None, str(exc))
            return render(request, "removal/request.html", _context(form=form), status=429)
        return render(request, "removal/request_sent.html", _context(email=data["email"], handle=data["profile"]))
    return render(request, "removal/request.html", _context(form=form), status=400 if form.errors else 200)


@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows the request and a button; only the POST confirms, so a mail scanner that follows
    links does not confirm anything on its own."""
    if request.method == "POST":
        found = removal.confirm_request(token)
        if found is not None:
            return render(request, "removal/confirmed.html", _context(request_=found))
    else:
        found = removal.pending_request(token)
        if found is not None:
            return render(request, "removal/confirm.html", _context(request_=found))
    return render(request, "removal/confirm_invalid.html", _context(), status=400)
