"""The app waiting behind a sign-in: what the sign-in and sign-up pages say when an authorization
request sent the person there.

DOT sends an authorization request that needs a sign-in through the login page with the whole
request in ``next``. The pages name the app and its badge exactly as the consent screen will
(``accounts.publishers.recognise`` on the request's redirect URI), but only for a registered client
and a redirect URI it may use: anything else shows the plain page, so a crafted link cannot dress
the sign-in page up as another app.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from django.urls import reverse
from oauth2_provider.models import get_application_model

from accounts.publishers import Publisher, recognise
from accounts.redirects import redirect_uri_allowed


def _authorize_paths() -> set[str]:
    return {reverse("oauth2_provider:authorize"), reverse("oauth2_provider:authorize-at-root")}


def waiting_app(next_url: str | None) -> Publisher | None:
    """The publisher of the app whose authorization request ``next_url`` is, or None."""
    if not next_url or len(next_url) > 8192:
        return None
    try:
        parts = urlsplit(next_url)
    except ValueError:
        return None
    if parts.scheme or parts.netloc or parts.path not in _authorize_paths():
        return None
    query = parse_qs(parts.query)
    client_id = (query.get("client_id") or [""])[0]
    redirect_uri = (query.get("redirect_uri") or [""])[0]
    if not client_id or not redirect_uri or "\x00" in client_id:
        return None
    application = get_application_model().objects.filter(client_id=client_id).first()
    if application is None or not redirect_uri_allowed(application, redirect_uri):
        return None
    return recognise(redirect_uri, application.name)
