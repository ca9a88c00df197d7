"""The operators' back office for providers, deployments, fallbacks and router settings.

Keys are write-only here: the form has an empty password field (typing a key replaces the stored
one) and a "clear" box; pages only ever show whether a key is set and its last four characters.
Every change made here is written to the audit log under the operator's name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html

from .config import acting_as
from .health import deployment_health
from .models import AuditLogEntry, Deployment, FallbackRule, Provider, RouterSettings

M = TypeVar("M", bound=Model)


class AuditedAdmin(admin.ModelAdmin[M]):
    """Attributes every change made through these pages (forms, deletes, actions) to the operator."""

    def _as_operator(self, request: HttpRequest, view: Callable[..., HttpResponse], *args: Any, **kwargs: Any) -> Any:
        with acting_as(request.user):
            return view(request, *args, **kwargs)

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return self._as_operator(request, super().changeform_view, *args, **kwargs)

    def delete_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return self._as_operator(request, super().delete_view, *args, **kwargs)

    def changelist_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return self._as_operator(request, super().changelist_view, *args, **kwargs)


class ProviderForm(forms.ModelForm[Provider]):
    api_key = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: never shown again. Leave blank to keep the current key.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored key")

    class Meta:
        model = Provider
        fields = ["name", "kind", "api_base", "extra_params", "enabled"]

    def save(self, commit: bool = True) -> Provider:
        provider = super().save(commit=False)
        if self.cleaned_data.get("clear_api_key"):
            provider.set_api_key("")
        elif self.cleaned_data.get("api_key"):
            provider.set_api_key(self.cleaned_data["api_key"])
        if commit:
            provider.save()
        return provider


class DeploymentInline(admin.TabularInline[Deployment, Provider]):
    model = Deployment
    extra = 0
    fields = ["model_group", "litellm_model", "mode", "enabled"]
    show_change_link = True


@admin.register(Provider)
class ProviderAdmin(AuditedAdmin[Provider]):
    form = ProviderForm
    list_display = ["name", "kind", "api_base", "key_hint", "enabled", "deployment_count"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "api_base"]
    readonly_fields = ["key_hint", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "enabled"]}),
        ("Credentials", {"fields": ["key_hint", "api_key", "clear_api_key"]}),
        ("Connection", {"fields": ["api_base", "extra_params"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]
    inlines = [DeploymentInline]

    @admin.display(description="API key")
    def key_hint(self, obj: Provider) -> str:
        return obj.key_hint

    @admin.display(description="Deployments")
    def deployment_count(self, obj: Provider) -> int:
        return obj.deployments.count()


class HealthChangeList(ChangeList):
    """Attaches each listed deployment's health (recent calls, cooldown) in two queries."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        deployments = list(self.result_list)
        health = deployment_health([deployment.pk for deployment in deployments])
        for deployment in deployments:
            deployment.health = health[deployment.pk]


@admin.register(Deployment)
class DeploymentAdmin(AuditedAdmin[Deployment]):
    class Media:
        css = {"all": ["css/admin.css"]}

    list_display = [
        "model_group",
        "provider",
        "litellm_model",
        "mode",
        "enabled",
        "health_status",
        "success_rate",
        "average_latency",
        "cooldown",
        "last_error",
    ]
    list_filter = ["mode", "enabled", "provider"]
    search_fields = ["model_group", "litellm_model", "provider__name"]
    list_select_related = ["provider"]
    actions = ["test_connection"]
    fieldsets = [
        (None, {"fields": ["model_group", "litellm_model", "provider", "mode", "enabled"]}),
        ("Limits and routing", {"fields": ["rpm", "tpm", "weight", "context_window", "max_output_tokens"]}),
        (
            "Prices (USD)",
            {
                "fields": [
                    "input_cost_per_token",
                    "output_cost_per_token",
                    "input_cost_per_second",
                    "output_cost_per_character",
                    "cost_per_query",
                ]
            },
        ),
        ("Health", {"fields": ["probe_enabled"]}),
    ]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return HealthChangeList

    @admin.display(description="Health")
    def health_status(self, obj: Deployment) -> str:
        status = obj.health.status  # type: ignore[attr-defined]
        return format_html('<b class="health health-{}">{}</b>', status, status)

    @admin.display(description="Success rate")
    def success_rate(self, obj: Deployment) -> str:
        health = obj.health  # type: ignore[attr-defined]
        if health.success_rate is None:
            return "no recent calls"
        return f"{health.success_rate:.0%} of {health.total}"

    @admin.display(description="Avg latency")
    def average_latency(self, obj: Deployment) -> str:
        latency = obj.health.avg_latency_ms  # type: ignore[attr-defined]
        return f"{latency:.0f} ms" if latency is not None else "-"

    @admin.display(description="Cooldown", boolean=True)
    def cooldown(self, obj: Deployment) -> bool:
        return bool(obj.health.in_cooldown)  # type: ignore[attr-defined]

    @admin.display(description="Last error")
    def last_error(self, obj: Deployment) -> str:
        health = obj.health  # type: ignore[attr-defined]
        if health.last_error_at is None:
            return "-"
        return f"{health.last_error_at:%Y-%m-%d %H:%M} {health.last_error[:120]}"

    @admin.action(description="Test connection (one cheap real call)")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Deployment]) -> None:
        from . import gateway

        for deployment in queryset.select_related("provider"):
            result = gateway.probe_deployment(deployment, app="admin", user_id=request.user.pk)
            if result.ok:
                self.message_user(request, f"{deployment}: OK in {result.latency_ms:.0f} ms", messages.SUCCESS)
            else:
                self.message_user(
                    request, f"{deployment}: failed after {result.latency_ms:.0f} ms: {result.error}", messages.ERROR
                )


class FallbackRuleForm(forms.ModelForm[FallbackRule]):
    class Meta:
        model = FallbackRule
        fields = ["model_group", "kind", "fallback_groups"]
        help_texts = {"fallback_groups": "Groups to try in order, comma-separated."}


@admin.register(FallbackRule)
class FallbackRuleAdmin(AuditedAdmin[FallbackRule]):
    form = FallbackRuleForm
    list_display = ["model_group", "kind", "fallback_list"]
    list_filter = ["kind"]
    search_fields = ["model_group"]

    @admin.display(description="Falls back to")
    def fallback_list(self, obj: FallbackRule) -> str:
        return " → ".join(obj.fallback_groups)


@admin.register(RouterSettings)
class RouterSettingsAdmin(AuditedAdmin[RouterSettings]):
    list_display = ["__str__", "routing_strategy", "num_retries", "timeout", "allowed_fails", "cooldown_time"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not RouterSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(AuditLogEntry)
class AuditLogAdmin(admin.ModelAdmin[AuditLogEntry]):
    list_display = ["created_at", "actor_label", "action", "object_type", "object_repr"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_label", "object_repr"]
    readonly_fields = [
        "created_at",
        "actor",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "changes",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
