"""The authorization server's HTTP endpoints where DOT's own need our policy on top.

DOT's class-based views are the library's extension points, so these subclass them and keep
to the additions: the consent screen, a rate-limited registration endpoint that also answers
the RFC 7591 fields DOT leaves out, and OpenID discovery listing the same endpoints as RFC 8414.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_deny
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.forms import AllowForm
from oauth2_provider.http import OAuth2ResponseRedirect
from oauth2_provider.models import get_application_model
from oauth2_provider.oauth2_backends import _add_iss_to_redirect
from oauth2_provider.scopes import get_scopes_backend
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views import (
    AuthorizationView,
    ConnectDiscoveryInfoView,
    DynamicClientRegistrationManagementView,
    DynamicClientRegistrationView,
    OAuthProtectedResourceMetadataView,
)
from oauth2_provider.views.dynamic_client_registration import _parse_metadata
from oauthlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error

from accounts.oauth import (
    MCP_TOOLS,
    OFFLINE_SCOPE,
    REQUIRED_SCOPES,
    RESOURCE_SCOPES,
    bind_resource,
    issuer,
    redirect_uri_problem,
)
from accounts.publishers import recognise
from avtrz import throttle
from workspaces.access import SESSION_KEY
from workspaces.models import Membership


class ConsentForm(AllowForm):
    """DOT's hidden authorization fields, plus the workspace, the optional scopes left on, and
    whether the connection stays connected (gets a refresh token) or ends with its access token."""

    workspace = forms.ChoiceField(required=False)
    scopes = forms.MultipleChoiceField(required=False)
    stay_connected = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.memberships = list(Membership.objects.select_related("workspace").filter(user=user))
        self.fields["workspace"].choices = [(m.workspace.slug, m.workspace.name) for m in self.memberships]
        self.fields["scopes"].choices = [(name, name) for name in get_scopes_backend().get_all_scopes()]

    def clean(self) -> dict:
        cleaned = super().clean()
        requested = (cleaned.get("scope") or "").split()
        kept = set(cleaned.get("scopes") or []) | REQUIRED_SCOPES
        # DOT issues what "scope" says: the requested scopes the user left on, never more; and
        # offline_access exactly when the user chose to stay connected, whether or not the client
        # asked for it. Most AI clients take their scopes from our challenge or resource metadata,
        # which do not name it (MCP 2026-07-28), yet their users expect the connection to last.
        granted = [scope for scope in requested if scope in kept and scope != OFFLINE_SCOPE]
        if cleaned.get("stay_connected"):
            granted.append(OFFLINE_SCOPE)
        cleaned["scope"] = " ".join(granted)
        slug = cleaned.get("workspace")
        cleaned["workspace"] = next((m.workspace for m in self.memberships if m.workspace.slug == slug), None)
        if cleaned.get("allow"):
            if not granted:
                self.add_error(None, "Leave at least one permission on to authorize.")
            if cleaned["workspace"] is None:
                self.add_error("workspace", "Choose the workspace this connection is for.")
        return cleaned


@dataclass(frozen=True)
class ScopeRow:
    name: str
    description: str
    required: bool


@method_decorator([never_cache, xframe_options_deny], name="dispatch")
class ConsentView(AuthorizationView):
    """The consent screen at the authorization endpoint.

    Sign-in comes first (DOT's LoginRequiredMixin sends the whole request through the login
    page and back). The form posts to this same URL; Authorize binds the grant to the chosen
    workspace and only the scopes left on, Deny answers the client with ``access_denied``.
    """

    template_name = "oauth/consent.html"
    form_class = ConsentForm

    def validate_authorization_request(self, request: HttpRequest):
        scopes, credentials = super().validate_authorization_request(request)
        # Refused here, before the user is asked, rather than after they click Authorize:
        # OAuth 2.1 PKCE with S256 only (oauthlib reads a missing method as "plain"), and no
        # audience but ours. The validator enforces both again when the code is issued.
        try:
            if credentials.get("code_challenge_method") != "S256":
                raise InvalidRequestError(description='PKCE with code_challenge_method "S256" is required.')
            bind_resource(request.GET.getlist("resource"))
        except OAuth2Error as error:
            error.state = credentials.get("state")
            raise OAuthToolkitError(error=error, redirect_uri=credentials["redirect_uri"]) from None
        return scopes, credentials

    def error_response(self, error, application, **kwargs) -> HttpResponse:
        response = super().error_response(error, application, **kwargs)
        if isinstance(response, OAuth2ResponseRedirect):
            # RFC 9207 asks for `iss` on error responses too; DOT adds it to successes only.
            response["Location"] = _add_iss_to_redirect(response["Location"], issuer())
        return response

    def get_form_kwargs(self) -> dict:
        return {**super().get_form_kwargs(), "user": self.request.user}

    def get_initial(self) -> dict:
        remembered = self.request.session.get(SESSION_KEY)
        return {**super().get_initial(), "workspace": remembered, "scopes": self.oauth2_data.get("scopes", [])}

    def get_context_data(self, **kwargs) -> dict:
        context = super().get_context_data(**kwargs)
        form = context["form"]
        descriptions = get_scopes_backend().get_all_scopes()
        selected = form.initial.get("workspace")
        if not any(m.workspace.slug == selected for m in form.memberships):
            selected = form.memberships[0].workspace.slug if form.memberships else None
        context.update(
            publisher=recognise(context["redirect_uri"], context["application"].name),
            # offline_access is not a row of its own: the "Stay connected" choice below decides it.
            scope_rows=[
                ScopeRow(name, descriptions[name], required=name in REQUIRED_SCOPES)
                for name in context["scopes"]
                if name != OFFLINE_SCOPE
            ],
            access_token_minutes=oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS // 60,
            refresh_idle_days=oauth2_settings.REFRESH_TOKEN_EXPIRE_SECONDS // 86400,
            tools=MCP_TOOLS,
            memberships=form.memberships,
            selected_workspace=next((m.workspace for m in form.memberships if m.workspace.slug == selected), None),
            create_workspace_url=f"{reverse('workspaces:create')}?{urlencode({'next': self.request.get_full_path()})}",
        )
        return context

    def form_valid(self, form: ConsentForm) -> HttpResponse:
        self.workspace = form.cleaned_data["workspace"]
        return super().form_valid(form)

    def form_invalid(self, form: ConsentForm) -> HttpResponse:
        # Only a tampered form or an empty grant gets here; the request cannot be re-shown
        # without the client's original parameters, so the user starts again from their app.
        messages = [message for errors in form.errors.values() for message in errors]
        error = {"error": "invalid_request", "description": " ".join(messages)}
        return self.render_to_response({"error": error}, status=400)

    def create_authorization_response(self, request, scopes, credentials, allow):
        if allow:
            # Travels on the oauthlib request to the validator, which records it on the grant.
            credentials["workspace"] = self.workspace
        return super().create_authorization_response(request, scopes, credentials, allow)


def _redirect_uri_refusal(metadata: dict) -> JsonResponse | None:
    """RFC 7591 ``invalid_redirect_uri`` when a redirect URI breaks our policy (see accounts.oauth)."""
    uris = metadata.get("redirect_uris")
    problems = [redirect_uri_problem(uri) for uri in uris if isinstance(uri, str)] if isinstance(uris, list) else []
    if not any(problems):
        return None
    description = "; ".join(problem for problem in problems if problem)
    return JsonResponse({"error": "invalid_redirect_uri", "error_description": description}, status=400)


class RegistrationView(DynamicClientRegistrationView):
    """RFC 7591 registration, open to anyone: rate-limited per client address, ``http`` redirect
    URIs only on loopback, and the response completed with ``client_id_issued_at`` and
    ``client_secret_expires_at`` (which RFC 7591 §3.2.1 requires when a secret is issued)."""

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        window = throttle.hit("oauth-register", throttle.client_ip(request), settings.OAUTH_REGISTRATION_RATE_WINDOW_S)
        if window.count > settings.OAUTH_REGISTRATION_RATE_LIMIT:
            response = JsonResponse(
                {
                    "error": "too_many_requests",
                    "error_description": "Too many client registrations from this address. Try again later.",
                },
                status=429,
            )
            response["Retry-After"] = str(window.retry_after)
            return response

        metadata, error = _parse_metadata(request.body)
        if error or (error := _redirect_uri_refusal(metadata)):
            return error

        response = super().post(request, *args, **kwargs)
        if response.status_code != 201:
            return response
        body = json.loads(response.content)
        application = get_application_model().objects.get(client_id=body["client_id"])
        body["client_id_issued_at"] = int(application.created.timestamp())
        if "client_secret" in body:
            body["client_secret_expires_at"] = 0  # never
            # DOT reports every confidential client as client_secret_basic; the token endpoint
            # accepts both methods, so echo the one the client asked for (some clients insist).
            if metadata.get("token_endpoint_auth_method") == "client_secret_post":
                body["token_endpoint_auth_method"] = "client_secret_post"  # noqa: S105 (a method name)
        return JsonResponse(body, status=201, headers={"Cache-Control": "no-store"})


class RegistrationManagementView(DynamicClientRegistrationManagementView):
    """RFC 7592 client configuration: an update is held to the same redirect URI policy."""

    def put(self, request: HttpRequest, client_id: str, *args, **kwargs) -> HttpResponse:
        metadata, error = _parse_metadata(request.body)
        if error or (error := _redirect_uri_refusal(metadata)):
            return error
        return super().put(request, client_id, *args, **kwargs)


class OpenIDConfigurationView(ConnectDiscoveryInfoView):
    """DOT's OpenID discovery, plus the registration and revocation endpoints and grant types that
    the RFC 8414 document lists: MCP clients may read either document, and must find the same server."""

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        data = json.loads(super().get(request, *args, **kwargs).content)
        data.update(
            registration_endpoint=self._get_endpoint_url(request, "dcr-register", required=True),
            revocation_endpoint=self._get_endpoint_url(request, "revoke-token", required=True),
            revocation_endpoint_auth_methods_supported=oauth2_settings.OAUTH2_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED,
            grant_types_supported=oauth2_settings.OAUTH2_GRANT_TYPES_SUPPORTED,
        )
        return JsonResponse(data, headers={"Access-Control-Allow-Origin": "*"})


class ProtectedResourceMetadataView(OAuthProtectedResourceMetadataView):
    """DOT's RFC 9728 metadata of the MCP endpoint, naming the scopes the endpoint asks for (the same
    as its 401 challenge), not every scope the authorization server knows. Never ``offline_access``:
    a resource server should not ask for it (MCP 2026-07-28); the consent screen decides it."""

    def get_scopes_supported(self):
        return list(RESOURCE_SCOPES)
