"""Unlock-by-email for a sign-in held off by the failed-attempt limits (accounts.forms.ThrottledSignIn).

When an (email, address) pair reaches the limit, the account's owner is mailed a link, at most once per
window. The link's token is random; only its SHA-256 digest is stored (in the cache, expiring after
``LOGIN_UNLOCK_TTL_S``), and the first use deletes it. Using it marks this browser's session as unlocked
for that email: it then signs in past the pair and address limits, with a failure count of its own.
The link opens a page with a button, so mail scanners that fetch links do not spend it.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.core.mail import send_mail
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from redis.exceptions import RedisError

from accounts.models import User
from avtrz.lib import throttle


SESSION_KEY = "login_unlocked"


def _cache_key(token: str) -> str:
    return "login-unlock:" + hashlib.sha256(token.encode()).hexdigest()


def offer(email: str) -> None:
    """Mail the owner of ``email`` an unlock link, once per window; nothing if there is no such account."""
    if throttle.hit("login-unlock-mail", email, settings.LOGIN_RATE_WINDOW_S).count != 1:
        return
    user = User.objects.filter(email__iexact=email, is_active=True).first()
    if user is None:
        return
    token = secrets.token_urlsafe(32)
    try:
        cache.set(_cache_key(token), {"user": user.pk, "email": user.email}, timeout=settings.LOGIN_UNLOCK_TTL_S)
    except RedisError:
        return  # the limits themselves are off while the cache is away
    url = settings.PUBLIC_BASE_URL + reverse("accounts:unlock", args=[token])
    body = render_to_string(
        "emails/login_unlock.txt",
        {"email": user.email, "url": url, "minutes": settings.LOGIN_UNLOCK_TTL_S // 60},
    )
    send_mail("Unlock sign-in to Avtrz", body, None, [user.email])


def granted(request: HttpRequest, email: str) -> str | None:
    """The ident this session's unlock counts failures under, if it holds one for ``email``."""
    grant = request.session.get(SESSION_KEY) if hasattr(request, "session") else None
    if not grant or grant.get("email") != email or grant.get("until", 0) < time.time():
        return None
    return grant["id"]


@require_http_methods(["GET", "POST"])
def unlock(request: HttpRequest, token: str) -> HttpResponse:
    key = _cache_key(token)
    try:
        found = cache.get(key)
    except RedisError:
        found = None
    if request.method == "GET" or not found:
        return render(request, "accounts/unlock.html", {"valid": bool(found)}, status=200 if found else 400)
    try:
        spent = cache.delete(key)  # only one of two simultaneous uses deletes it
    except RedisError:
        spent = False
    if not spent:
        return render(request, "accounts/unlock.html", {"valid": False}, status=400)
    email = found["email"].lower()
    request.session[SESSION_KEY] = {
        "email": email,
        "id": hashlib.sha256(token.encode()).hexdigest()[:32],
        "until": time.time() + settings.LOGIN_RATE_WINDOW_S,
    }
    throttle.reset("login-pair", f"{email}|{throttle.client_ip(request)}")
    messages.success(request, "Sign-in is unlocked in this browser. Sign in with your password.")
    return redirect(reverse("accounts:login"))
