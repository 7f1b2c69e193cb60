from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.db.models.signals import pre_save
        from oauth2_provider.models import get_application_model

        from accounts import connections  # noqa: F401  (connects the MCP token cache's invalidation receivers)
        from accounts.oauth import sign_id_tokens_with_rs256

        pre_save.connect(sign_id_tokens_with_rs256, sender=get_application_model(), dispatch_uid="avtrz-rs256")
