from django.apps import AppConfig


class AvatarsConfig(AppConfig):
    name = "avtrz.avatars"
    label = "avatars"
    verbose_name = "Avatar engine"
