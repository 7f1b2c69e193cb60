"""The authorization server's HTTP endpoints where DOT's own need our policy on top.

DOT's class-based views are the library's extension points, so these subclass them and keep
to the additions: the consent screen (with OAuth errors, or a page saying why, where DOT fails),
a token endpoint refusing in JSON what DOT lets fail, a rate-limited registration endpoint that
also answers the RFC 7591 fields DOT leaves out, and OpenID discovery listing the same endpoints
as RFC 8414.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import resolve_url
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_deny
from oauth2_provider.cimd import is_cimd_client_id
from oauth2_provider.exceptions import FatalClientError, OAuthToolkitError
from oauth2_provider.forms import AllowForm
from oauth2_provider.http import OAuth2ResponseRedirect
from oauth2_provider.models import get_application_model
from oauth2_provider.scopes import get_scopes_backend
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views import (
    AuthorizationView,
    ConnectDiscoveryInfoView,
    DynamicClientRegistrationManagementView,
    DynamicClientRegistrationView,
    OAuthProtectedResourceMetadataView,
    OAuthServerMetadataView,
)
from oauth2_provider.views import TokenView as DOTTokenView
from oauthlib.oauth2.rfc6749 import errors as oauth_errors
from oauthlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error

from accounts import cimd, dot
from accounts.connections import last_revoked, revoked_by
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
from accounts.redirects import malformed, redirect_uri_allowed
from avtrz.lib import throttle
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

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        # approval_prompt=auto asks DOT to skip this screen when the user holds a token with these
        # scopes. We always show it: it also picks the workspace the connection bills to, which may
        # differ this time, and DOT's skip would issue a code bound to no workspace. So the
        # parameter is ignored (as "force", DOT's default); prompt=consent and select_account ask
        # for what the screen does anyway.
        if "approval_prompt" in request.GET:
            request = _without_parameter(request, "approval_prompt")
        return super().get(request, *args, **kwargs)

    def validate_authorization_request(self, request: HttpRequest):
        prompt = " ".join(request.GET.getlist("prompt")).split()
        if "none" in prompt:
            self._refuse_silent_request(request, prompt)
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

    def handle_prompt_create(self) -> HttpResponse | None:
        """``prompt=create`` (OpenID Connect Prompt Create 1.0): someone signed in goes on to the
        consent screen (None); anyone else, once the request checks out, to the sign-up page, which
        brings them back here without ``create`` once their account is active. DOT's own sends an
        absolute ``next``, which the sign-up page does not take for an authorization request
        (accounts.waiting): it would not name the app waiting to connect."""
        if self.request.user.is_authenticated:
            return None
        try:
            self.validate_authorization_request(self.request)
        except OAuthToolkitError as error:
            return self.error_response(error, application=None)
        query = self.request.GET.copy()
        others = [value for value in " ".join(query.pop("prompt", [])).split() if value != "create"]
        if others:
            query["prompt"] = " ".join(others)
        next_url = f"{self.request.path}?{query.urlencode()}"
        return redirect_to_login(next_url, resolve_url(oauth2_settings.OIDC_RP_INITIATED_REGISTRATION_URL))

    def _refuse_silent_request(self, request: HttpRequest, prompt: list[str]):
        """``prompt=none`` (OpenID Connect Core §3.1.2.1): answer without any page, and since every
        connection needs the user's consent and choice of workspace, always with an error, once
        the request is otherwise valid (so nothing is sent to an unregistered redirect URI):
        ``login_required`` when nobody is signed in, else ``consent_required``. oauthlib would
        ask the validator for a silent login, which DOT does not implement (a 500)."""
        _scopes, credentials = self.validate_authorization_request(_without_parameter(request, "prompt"))
        if set(prompt) != {"none"}:
            error: OAuth2Error = InvalidRequestError(description="prompt=none cannot be combined with other values.")
        elif request.user.is_authenticated:
            error = oauth_errors.ConsentRequired(
                description="Avtrz asks the user to approve every connection and choose its workspace."
            )
        else:
            error = oauth_errors.LoginRequired(description="The user is not signed in to Avtrz.")
        error.state = credentials.get("state")
        raise OAuthToolkitError(error=error, redirect_uri=credentials["redirect_uri"])

    def error_response(self, error, application, **kwargs) -> HttpResponse:
        if isinstance(error, FatalClientError) or not error.oauthlib_error.redirect_uri:
            # Nowhere safe to send the error (an unknown client or redirect URI), or nowhere at
            # all (oauthlib raised it without the request, e.g. for a malformed claims parameter;
            # DOT would try a redirect to "?error=..." and fail with a bare 400): tell the person.
            return self._error_page(error.oauthlib_error)
        response = super().error_response(error, application, **kwargs)
        if isinstance(response, OAuth2ResponseRedirect):
            # RFC 9207 asks for `iss` on error responses too; DOT adds it to successes only.
            response["Location"] = dot.add_iss_to_redirect(response["Location"], issuer())
        return response

    def get_form_kwargs(self) -> dict:
        return {**super().get_form_kwargs(), "user": self.request.user}

    def get_initial(self) -> dict:
        remembered = self.request.session.get(SESSION_KEY)
        initial = super().get_initial()
        # The requested scopes start switched on; DOT's initial "scope" joins them with spaces.
        return {**initial, "workspace": remembered, "scopes": (initial["scope"] or "").split()}

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
            revoked=self._revoked_note(context["application"], context["redirect_uri"]),
        )
        return context

    def _revoked_note(self, application, redirect_uri: str) -> dict | None:
        """When this app's latest connection by this user was revoked: which, when and by whom, so the
        screen can say why the app is back here ("You revoked this connection on …")."""
        previous = last_revoked(self.request.user, application, redirect_uri)
        if previous is None:
            return None
        actor = revoked_by(previous)
        return {
            "connection": previous,
            "actor": actor,
            "by_you": actor is not None and actor.pk == self.request.user.pk,
        }

    def form_valid(self, form: ConsentForm) -> HttpResponse:
        # The hidden fields come back from the browser. DOT trusts them; an unknown client would be
        # a 500, and a redirect URI the client never registered would receive the denial.
        application = get_application_model().objects.filter(client_id=form.cleaned_data.get("client_id")).first()
        if application is None or not redirect_uri_allowed(application, form.cleaned_data.get("redirect_uri") or ""):
            error = {"error": "invalid_request", "description": "The authorization form was changed after it was sent."}
            return self.render_to_response({"error": error}, status=400)
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
            # Travels on the oauthlib request to the validator, which records it on the grant (and
            # refuses the grant without one: an application with skip_authorization never gets here
            # through the form, so it is answered access_denied rather than a 500).
            credentials["workspace"] = getattr(self, "workspace", None)
        return super().create_authorization_response(request, scopes, credentials, allow)

    def _error_page(self, oauthlib_error: OAuth2Error) -> HttpResponse:
        """The error page, saying in plain words what the person can check or tell the app's maker."""
        context = {"error": {"error": oauthlib_error.error, "description": oauthlib_error.description}}
        client_id = self.request.GET.get("client_id", "")
        if isinstance(oauthlib_error, oauth_errors.InvalidClientIdError) and client_id:
            if is_cimd_client_id(client_id):
                context["cimd"] = {
                    "url": client_id,
                    "reason": cimd.failure_reason(client_id)
                    or "Avtrz could not check the document just now. Wait a minute, then try again from the app.",
                }
            else:
                context["error"]["description"] = (
                    "Avtrz does not know this app: its client ID is not registered here. Apps that register "
                    "but never connect are removed after a day; connecting again from the app registers it anew."
                )
        elif isinstance(oauthlib_error, oauth_errors.MismatchingRedirectURIError):
            redirect_uri = self.request.GET.get("redirect_uri", "")
            application = get_application_model().objects.filter(client_id=client_id).first()
            if application is not None and application.registration_source == application.RegistrationSource.CIMD:
                where = f"listed in its client metadata document ({client_id})"
            else:
                where = "one it registered with Avtrz"
            context["error"]["description"] = (
                f"The app asked Avtrz to send you back to {redirect_uri}, which is not {where}."
            )
        return self.render_to_response(context, status=oauthlib_error.status_code)


def _without_parameter(request: HttpRequest, name: str) -> HttpRequest:
    """A copy of a GET request without the query parameter ``name``: DOT and oauthlib read the
    query from both ``GET`` and the raw query string, so both change."""
    query = request.GET.copy()
    query.pop(name, None)
    clone = copy.copy(request)
    clone.META = {**request.META, "QUERY_STRING": query.urlencode()}
    clone.GET = QueryDict(clone.META["QUERY_STRING"])
    return clone


class TokenView(DOTTokenView):
    """DOT's token endpoint, answering in JSON what DOT lets fail.

    DOT runs the device flow's polling for ``grant_type=urn:ietf:params:oauth:grant-type:device_code``
    before any other check (a 500 without ``device_code``, a 404 with one); a grant type this
    server does not issue tokens for gets ``unsupported_grant_type`` instead, before any client
    authentication. A JSON body, or one past Django's size limits, gets ``invalid_request`` rather
    than a misleading error or an HTML page; errors our validator raises get the JSON content type
    and ``no-store`` that oauthlib gives only its own.
    """

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        # A body past Django's size limits is answered by avtrz.lib.middleware.NulCharacterMiddleware,
        # which reads the parameters first.
        grant_type = request.POST.get("grant_type")
        if request.content_type == "application/json":
            return _token_error(
                "invalid_request",
                "Send the token request as application/x-www-form-urlencoded parameters, not JSON.",
            )
        supported = oauth2_settings.OAUTH2_GRANT_TYPES_SUPPORTED
        if grant_type and grant_type not in supported:
            return _token_error("unsupported_grant_type", f"This server issues tokens for {', '.join(supported)} only.")
        response = super().post(request, *args, **kwargs)
        if response.status_code >= 400 and response.content.startswith(b"{"):
            response["Content-Type"] = "application/json"
            response["Cache-Control"] = "no-store"
        return response


def _token_error(error: str, description: str) -> JsonResponse:
    return JsonResponse(
        {"error": error, "error_description": description}, status=400, headers={"Cache-Control": "no-store"}
    )


# What a client may register: the one grant and response type this server serves.
_GRANT_TYPES = ("authorization_code", "refresh_token")
_RESPONSE_TYPES = ("code",)
# OpenID Connect Dynamic Client Registration §2; MCP 2026-07-28 clients must send it.
_APPLICATION_TYPES = ("web", "native")


def _refusal(error: str, description: str) -> JsonResponse:
    return JsonResponse({"error": error, "error_description": description}, status=400)


def _read_metadata(request: HttpRequest) -> tuple[dict | None, JsonResponse | None]:
    """The JSON body as DOT parses it; a body too large or too deeply nested is refused in JSON too."""
    try:
        body = request.body
    except RequestDataTooBig:
        return None, _refusal("invalid_client_metadata", "The registration request is too large.")
    try:
        return dot.parse_registration_metadata(body)
    except RecursionError:
        return None, _refusal("invalid_client_metadata", "Request body must be valid JSON")


def _holds_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def _registrable(metadata: dict) -> tuple[dict | None, JsonResponse | None]:
    """The metadata to register, or the RFC 7591 error refusing it.

    On top of DOT's checks: redirect URIs must parse and follow our policy (accounts.oauth);
    ``client_name`` is text; ``application_type`` is "web" or "native". Only the authorization
    code grant (with refresh tokens) and the ``code`` response type exist here: other values listed
    beside them are dropped, as RFC 7591 §3.2.1 lets the server replace what it does not support
    (older VS Code lists the device grant too), and the response says what was registered; a
    client that lists neither is refused.
    """
    uris = metadata.get("redirect_uris")
    if isinstance(uris, list):
        problems = [malformed(uri) or redirect_uri_problem(uri) for uri in uris if isinstance(uri, str)]
        if any(problems):
            return None, _refusal("invalid_redirect_uri", "; ".join(problem for problem in problems if problem))
    if _holds_nul(metadata):
        # As avtrz.lib.middleware.NulCharacterMiddleware does for form parameters: PostgreSQL refuses it.
        return None, _refusal("invalid_client_metadata", "A value contains a NUL character.")
    if not isinstance(metadata.get("client_name", ""), str):
        return None, _refusal("invalid_client_metadata", "client_name must be a string")
    if metadata.get("application_type", "web") not in _APPLICATION_TYPES:
        return None, _refusal("invalid_client_metadata", 'application_type must be "web" or "native"')
    registered = dict(metadata)
    for field, supported in (("grant_types", _GRANT_TYPES), ("response_types", _RESPONSE_TYPES)):
        values = metadata.get(field)
        if values is None:
            continue
        if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
            return None, _refusal("invalid_client_metadata", f"{field} must be an array of strings")
        if supported[0] not in values:
            return None, _refusal(
                "invalid_client_metadata", f"{field} must include {supported[0]}: it is the only one this server serves"
            )
        registered[field] = [value for value in values if value in supported]
    return registered, None


def _registration_response(response: HttpResponse, metadata: dict) -> HttpResponse:
    """DOT's RFC 7591/7592 response, completed with what §3.2.1 asks for and DOT leaves out.

    ``scope`` is not echoed: DOT registers none, so a client may ask for any scope the metadata
    lists and the user decides on the consent screen; echoing what the client sent would claim a
    restriction that does not exist. ``client_uri`` and ``logo_uri`` are not stored, so not echoed.
    """
    if response.status_code not in (200, 201):
        return response
    body = json.loads(response.content)
    application = get_application_model().objects.get(client_id=body["client_id"])
    body["client_id_issued_at"] = int(application.created.timestamp())
    body["response_types"] = list(_RESPONSE_TYPES)
    if "application_type" in metadata:
        body["application_type"] = metadata["application_type"]
    if "client_secret" in body:
        body["client_secret_expires_at"] = 0  # never
    # DOT reports every confidential client as client_secret_basic; the token endpoint accepts
    # both methods, so echo the one the client asked for (some clients insist).
    if application.client_type == application.CLIENT_CONFIDENTIAL and (
        metadata.get("token_endpoint_auth_method") == "client_secret_post"
    ):
        body["token_endpoint_auth_method"] = "client_secret_post"  # noqa: S105 (a method name)
    return JsonResponse(body, status=response.status_code, headers={"Cache-Control": "no-store"})


def _use_registrable(request: HttpRequest) -> tuple[dict | None, JsonResponse | None]:
    """Check the request's metadata and hand DOT the registrable form of it (DOT reads the body)."""
    metadata, error = _read_metadata(request)
    if metadata is None:
        return None, error
    registered, error = _registrable(metadata)
    if registered is None:
        return None, error
    dot.replace_registration_body(request, registered)
    return metadata, None


class RegistrationView(DynamicClientRegistrationView):
    """RFC 7591 registration, open to anyone: rate-limited per client address, ``http`` redirect
    URIs only on loopback, and the response completed with the fields RFC 7591 §3.2.1 asks for
    that DOT leaves out (``client_id_issued_at``, ``response_types``, ``application_type``, and
    ``client_secret_expires_at`` when a secret is issued)."""

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

        metadata, error = _use_registrable(request)
        if error:
            return error
        assert metadata is not None  # (metadata, None) or (None, error), as DOT's parsers answer
        return _registration_response(super().post(request, *args, **kwargs), metadata)


class RegistrationManagementView(DynamicClientRegistrationManagementView):
    """RFC 7592 client configuration: an update is held to the same rules, and answered (like a
    read) with the same completed response as a registration."""

    def get(self, request: HttpRequest, client_id: str, *args, **kwargs) -> HttpResponse:
        return _registration_response(super().get(request, client_id, *args, **kwargs), {})

    def put(self, request: HttpRequest, client_id: str, *args, **kwargs) -> HttpResponse:
        metadata, error = _use_registrable(request)
        if error:
            return error
        assert metadata is not None  # (metadata, None) or (None, error), as DOT's parsers answer
        return _registration_response(super().put(request, client_id, *args, **kwargs), metadata)


# What OpenID discovery takes from the RFC 8414 document, which DOT's OpenID view leaves out.
_FROM_SERVER_METADATA = (
    "registration_endpoint",
    "revocation_endpoint",
    "revocation_endpoint_auth_methods_supported",
    "grant_types_supported",
)


class OpenIDConfigurationView(ConnectDiscoveryInfoView):
    """DOT's OpenID discovery, plus the registration and revocation endpoints and grant types that
    the RFC 8414 document lists: MCP clients may read either document, and must find the same server,
    so the values are copied from DOT's RFC 8414 view (a missing one is a 500, not a silent gap)."""

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        data = json.loads(super().get(request, *args, **kwargs).content)
        server_metadata = json.loads(OAuthServerMetadataView.as_view()(request).content)
        data.update({key: server_metadata[key] for key in _FROM_SERVER_METADATA})
        return JsonResponse(data, headers={"Access-Control-Allow-Origin": "*"})


class ProtectedResourceMetadataView(OAuthProtectedResourceMetadataView):
    """DOT's RFC 9728 metadata of the MCP endpoint, naming the scopes the endpoint asks for (the same
    as its 401 challenge), not every scope the authorization server knows. Never ``offline_access``:
    a resource server should not ask for it (MCP 2026-07-28); the consent screen decides it."""

    def get_scopes_supported(self):
        return list(RESOURCE_SCOPES)
