from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "providers"
    verbose_name = "Providers and routing"

    def ready(self) -> None:
        from . import config  # noqa: F401 - connects the audit and version signals
