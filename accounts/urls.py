from django.urls import path

from accounts import unlock, views


app_name = "accounts"

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("signup/sent/", views.signup_sent, name="signup_sent"),
    path("activate/<uidb64>/<token>/", views.activate, name="activate"),
    path("login/", views.signin, name="login"),
    path("unlock/<str:token>/", unlock.unlock, name="unlock"),
    path("logout/", views.signout, name="logout"),
    path("password/change/", views.password_change, name="password_change"),
    path("password/change/done/", views.password_change_done, name="password_change_done"),
    path("password/reset/", views.password_reset, name="password_reset"),
    path("password/reset/sent/", views.password_reset_done, name="password_reset_done"),
    path("password/reset/<uidb64>/<token>/", views.password_reset_confirm, name="password_reset_confirm"),
    path("password/reset/done/", views.password_reset_complete, name="password_reset_complete"),
]
