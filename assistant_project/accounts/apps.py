from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "assistant_project.accounts"
    label = "accounts"
    verbose_name = "Accounts and API keys"

    def ready(self) -> None:
        from assistant_project import api_schema  # noqa: F401 - registers the API-key scheme with drf-spectacular
