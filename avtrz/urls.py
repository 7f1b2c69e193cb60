from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from accounts.forms import AdminSignInForm
from avtrz.avatars import demo_source, removal_views
from avtrz.site import docs, views


urlpatterns = [
    path("", views.landing, name="landing"),
    path("healthz", views.health, name="health"),
    path("privacy/", removal_views.privacy, name="privacy"),
    path("privacy/removal/", removal_views.request_form, name="removal-request"),
    path("privacy/removal/confirm/<str:token>/", removal_views.confirm, name="removal-confirm"),
    path("", include("avtrz.avatars.urls")),
    path("accounts/", include("accounts.urls")),
    path("", include("accounts.oauth_urls")),
    path("", include("workspaces.urls")),
    path("docs/", include((docs.urlpatterns, "docs"))),
    path("admin/", admin.site.urls),
]

if settings.DEBUG:
    # Development stands in for LinkedIn itself, so `make run` enriches profiles without the internet.
    urlpatterns += demo_source.urlpatterns

# The admin signs in through the same failed-attempt limits as the site (accounts.forms.ThrottledSignIn).
admin.site.login_form = AdminSignInForm
admin.site.site_header = "Avtrz support"
admin.site.site_title = "Avtrz support"
admin.site.index_title = "Support"
