from django.urls import path

from workspaces import views


app_name = "workspaces"

urlpatterns = [
    path("dashboard/", views.home, name="home"),
    path("workspaces/", views.workspace_list, name="list"),
    path("workspaces/new/", views.create, name="create"),
    path("invitations/<str:token>/", views.invitation, name="invitation"),
    path("w/<slug:slug>/", views.overview, name="overview"),
    path("w/<slug:slug>/switch/", views.switch, name="switch"),
    path("w/<slug:slug>/settings/", views.settings_page, name="settings"),
    path("w/<slug:slug>/rename/", views.rename, name="rename"),
    path("w/<slug:slug>/leave/", views.leave, name="leave"),
    path("w/<slug:slug>/members/", views.members, name="members"),
    path("w/<slug:slug>/members/invite/", views.invite, name="invite"),
    path("w/<slug:slug>/members/<uuid:uid>/remove/", views.remove_member, name="remove_member"),
    path("w/<slug:slug>/members/<uuid:uid>/role/", views.change_role, name="change_role"),
    path("w/<slug:slug>/invitations/<uuid:uid>/revoke/", views.revoke_invitation, name="revoke_invitation"),
    path("w/<slug:slug>/keys/", views.api_keys, name="api_keys"),
    path("w/<slug:slug>/keys/new/", views.create_key, name="create_key"),
    path("w/<slug:slug>/keys/<uuid:uid>/", views.api_key, name="api_key"),
    path("w/<slug:slug>/keys/<uuid:uid>/domains/", views.key_domains, name="key_domains"),
    path("w/<slug:slug>/keys/<uuid:uid>/revoke/", views.revoke_key, name="revoke_key"),
    path("w/<slug:slug>/keys/<uuid:uid>/rotate/", views.rotate_key, name="rotate_key"),
    path("w/<slug:slug>/connections/", views.connections, name="connections"),
    path("w/<slug:slug>/connections/<uuid:uid>/revoke/", views.revoke_connection_view, name="revoke_connection"),
    path("w/<slug:slug>/usage/", views.usage_page, name="usage"),
    path("w/<slug:slug>/usage.json", views.usage_json, name="usage_json"),
    path("w/<slug:slug>/billing/", views.billing_page, name="billing"),
    path("w/<slug:slug>/billing/plan/", views.change_plan, name="change_plan"),
    path("w/<slug:slug>/billing/checkout/", views.checkout, name="checkout"),
    path("w/<slug:slug>/billing/portal/", views.billing_portal, name="billing_portal"),
    path("w/<slug:slug>/connect/", views.connect, name="connect"),
    path("billing/stripe/webhook/", views.stripe_webhook, name="stripe_webhook"),
]
