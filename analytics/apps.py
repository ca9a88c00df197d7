from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class AnalyticsConfig(AppConfig):
    name = "analytics"

    def ready(self) -> None:
        # A budget change applies at once in this process (other processes look every second);
        # the handler lives in the gateway module, which is imported only when a signal fires.
        def forget(**kwargs: object) -> None:
            from providers.gateway import forget_budgets

            forget_budgets()

        budget = self.get_model("Budget")
        post_save.connect(forget, sender=budget, weak=False, dispatch_uid="analytics.forget_budgets.save")
        post_delete.connect(forget, sender=budget, weak=False, dispatch_uid="analytics.forget_budgets.delete")
