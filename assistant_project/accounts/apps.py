from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "assistant_project.accounts"
    label = "accounts"
    verbose_name = "Accounts and API keys"
