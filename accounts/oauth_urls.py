"""The authorization server's URLs, included at the site root.

One module in DOT's ``oauth2_provider`` namespace (DOT reverses its own endpoint names to build
the metadata documents): discovery documents at the root, where RFC 8414, OpenID discovery and
RFC 9728 put them for an issuer without a path, and the endpoints under ``/o/``. Those that
authenticate clients are ``limited``: too many failed client authentications get a 429
(accounts.client_auth).
"""

from django.urls import path, re_path
from oauth2_provider import views as dot_views

from accounts import oauth_views
from accounts.client_auth import limited


app_name = "oauth2_provider"

urlpatterns = [
    path(
        ".well-known/oauth-authorization-server",
        dot_views.OAuthServerMetadataView.as_view(),
        name="oauth-server-metadata",
    ),
    re_path(
        r"^\.well-known/openid-configuration/?$",
        oauth_views.OpenIDConfigurationView.as_view(),
        name="oidc-connect-discovery-info",
    ),
    path(".well-known/jwks.json", dot_views.JwksInfoView.as_view(), name="jwks-info"),
    # RFC 9728: the MCP endpoint's metadata, at the path-suffixed location and the root one.
    path(
        ".well-known/oauth-protected-resource",
        oauth_views.ProtectedResourceMetadataView.as_view(),
        name="oauth-resource-metadata",
    ),
    path(
        ".well-known/oauth-protected-resource/mcp",
        oauth_views.ProtectedResourceMetadataView.as_view(),
        name="oauth-resource-metadata-mcp",
    ),
    path("o/authorize/", oauth_views.ConsentView.as_view(), name="authorize"),
    path("o/token/", limited(oauth_views.TokenView.as_view()), name="token"),
    path("o/revoke_token/", limited(dot_views.RevokeTokenView.as_view()), name="revoke-token"),
    path("o/introspect/", limited(dot_views.IntrospectTokenView.as_view()), name="introspect"),
    path("o/userinfo/", dot_views.UserInfoView.as_view(), name="user-info"),
    path("o/register/", oauth_views.RegistrationView.as_view(), name="dcr-register"),
    path(
        "o/register/<str:client_id>/",
        oauth_views.RegistrationManagementView.as_view(),
        name="dcr-register-management",
    ),
    # Some clients build these from the origin instead of reading the metadata.
    path("authorize", oauth_views.ConsentView.as_view(), name="authorize-at-root"),
    path("token", limited(oauth_views.TokenView.as_view()), name="token-at-root"),
    path("register", oauth_views.RegistrationView.as_view(), name="dcr-register-at-root"),
]
