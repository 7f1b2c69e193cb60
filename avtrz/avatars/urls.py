from django.urls import path

from avtrz.avatars import views


app_name = "avatars"

urlpatterns = [
    path("v1/avatar", views.avatar, name="avatar"),
    path("v1/usage", views.usage_view, name="usage"),
    path("v1/openapi.json", views.openapi, name="openapi"),
    path("img/<str:name>", views.image, name="image"),
]
