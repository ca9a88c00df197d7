from django.contrib import admin

from .models import Budget, LLMCall


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin[Budget]):
    list_display = ["__str__", "user", "period", "limit_usd", "requests_per_minute", "downgrade_group", "downgrade_at"]
    list_select_related = ["user"]
    search_fields = ["user__username"]


@admin.register(LLMCall)
class LLMCallAdmin(admin.ModelAdmin[LLMCall]):
    list_display = [
        "created_at",
        "app",
        "call_type",
        "requested_group",
        "model_group",
        "provider",
        "status",
        "attempt",
        "total_tokens",
        "cost",
        "latency_ms",
    ]
    list_filter = ["status", "app", "call_type", "provider"]
    search_fields = ["trace_id", "model_group", "user__username"]
    date_hierarchy = "created_at"
    show_full_result_count = False  # the table is large: no full COUNT(*) per page

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
