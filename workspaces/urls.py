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
]
