"""Providers, deployments, fallbacks and router settings: the configuration the gateway's Router is
built from. Operators edit them in the Django admin; every change is audited and makes every
process rebuild its Router (see ``providers.config``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, URLValidator
from django.db import models

from . import crypto


class ProviderKind(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    GEMINI = "gemini", "Google Gemini (AI Studio)"
    VERTEX_AI = "vertex_ai", "Google Vertex AI"
    AZURE = "azure", "Azure OpenAI"
    COHERE = "cohere", "Cohere"
    MISTRAL = "mistral", "Mistral"
    GROQ = "groq", "Groq"
    OLLAMA = "ollama", "Ollama"
    OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible server"
    LOCAL = "local", "Local offline models (built in)"


# Kinds whose calls cost nothing, so periodic health probes default to on for them.
FREE_KINDS = {ProviderKind.OLLAMA, ProviderKind.LOCAL}

# LiteLLM parameters an operator may set per provider besides the key and base URL.
EXTRA_PARAM_NAMES = {
    "api_version",
    "organization",
    "vertex_project",
    "vertex_location",
    "vertex_credentials",
    "aws_region_name",
    "region_name",
    "max_retries",
    "extra_headers",
    "custom_llm_provider",
}


class Provider(models.Model):
    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=32, choices=ProviderKind.choices)
    api_key_encrypted = models.TextField(blank=True, default="", editable=False)
    api_key_last4 = models.CharField(max_length=4, blank=True, default="", editable=False)
    # A CharField with a URL validator: Django's URLField form field warns about its default scheme.
    api_base = models.CharField(
        max_length=500,
        blank=True,
        default="",
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="The provider's base URL, e.g. https://example.openai.azure.com. Leave blank for the default.",
    )
    extra_params = models.JSONField(
        default=dict,
        blank=True,
        help_text='Extra LiteLLM parameters, e.g. {"api_version": "2024-06-01"} or {"vertex_project": "p"}.',
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    # The key is write-only: it can be set, cleared or used by the gateway, never shown.
    def set_api_key(self, plain: str) -> None:
        plain = plain.strip()
        if plain:
            self.api_key_encrypted = crypto.encrypt(plain)
            self.api_key_last4 = plain[-4:]
        else:
            self.api_key_encrypted = ""
            self.api_key_last4 = ""

    def get_api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted) if self.api_key_encrypted else ""

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)

    @property
    def key_hint(self) -> str:
        return f"set (…{self.api_key_last4})" if self.has_api_key else "not set"

    def clean(self) -> None:
        unknown = set(self.extra_params or {}) - EXTRA_PARAM_NAMES
        if not isinstance(self.extra_params, dict):
            raise ValidationError({"extra_params": "Extra parameters must be a JSON object."})
        if unknown:
            raise ValidationError(
                {
                    "extra_params": f"Unknown parameter(s): {', '.join(sorted(unknown))}. "
                    f"Allowed: {', '.join(sorted(EXTRA_PARAM_NAMES))}."
                }
            )
        if {"api_key", "api_base"} & set(self.extra_params):
            raise ValidationError({"extra_params": "Set the key and base URL in their own fields."})


class DeploymentMode(models.TextChoices):
    CHAT = "chat", "Chat"
    EMBEDDING = "embedding", "Embedding"
    RERANK = "rerank", "Rerank"
    TRANSCRIPTION = "transcription", "Speech to text"
    SPEECH = "speech", "Text to speech"


# LiteLLM's names for the modes, in model_info.
LITELLM_MODES = {
    DeploymentMode.CHAT: "chat",
    DeploymentMode.EMBEDDING: "embedding",
    DeploymentMode.RERANK: "rerank",
    DeploymentMode.TRANSCRIPTION: "audio_transcription",
    DeploymentMode.SPEECH: "audio_speech",
}


def price_field(help_text: str = "") -> models.DecimalField[Decimal, Decimal]:
    return models.DecimalField(
        max_digits=20, decimal_places=12, default=Decimal(0), validators=[MinValueValidator(0)], help_text=help_text
    )


class DeploymentQuerySet(models.QuerySet["Deployment"]):
    def active(self) -> DeploymentQuerySet:
        return self.filter(enabled=True, provider__enabled=True)

    def of_mode(self, mode: str) -> DeploymentQuerySet:
        return self.filter(mode=mode)

    def group_names(self, mode: str) -> list[str]:
        groups = self.active().of_mode(mode).order_by("model_group").values_list("model_group", flat=True)
        return list(groups.distinct())


class Deployment(models.Model):
    model_group = models.CharField(
        max_length=100, db_index=True, help_text="The name users pick, e.g. gpt-4. Several deployments may share it."
    )
    litellm_model = models.CharField(max_length=200, help_text="LiteLLM's model string, e.g. openai/gpt-4o.")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="deployments")
    mode = models.CharField(max_length=16, choices=DeploymentMode.choices, default=DeploymentMode.CHAT)
    rpm = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute allowed.")
    tpm = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens per minute allowed.")
    input_cost_per_token = price_field("Chat and embeddings, per input token.")
    output_cost_per_token = price_field("Chat, per output token.")
    input_cost_per_second = price_field("Speech to text, per second of audio.")
    output_cost_per_character = price_field("Text to speech, per character.")
    cost_per_query = price_field("Rerank, per query.")
    context_window = models.PositiveIntegerField(null=True, blank=True, help_text="Max input tokens.")
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    weight = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    enabled = models.BooleanField(default=True)
    probe_enabled = models.BooleanField(
        null=True,
        blank=True,
        help_text="Periodic health probes. Unset: on for free (local) providers, off for paid ones.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DeploymentQuerySet.as_manager()

    class Meta:
        ordering = ["model_group", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_group", "litellm_model", "provider"], name="unique_deployment_per_group"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model_group} → {self.provider.name}:{self.litellm_model}"

    @property
    def probes(self) -> bool:
        if self.probe_enabled is not None:
            return self.probe_enabled
        return self.provider.kind in FREE_KINDS

    def clean(self) -> None:
        if self.model_group:
            clash = Deployment.objects.filter(model_group=self.model_group).exclude(pk=self.pk).exclude(mode=self.mode)
            if clash.exists():
                raise ValidationError(
                    {
                        "mode": f"Group {self.model_group!r} already serves mode {clash.first().mode}; "  # type: ignore[union-attr]
                        "a group has one mode."
                    }
                )


class FallbackKind(models.TextChoices):
    GENERAL = "general", "Any failure"
    CONTEXT_WINDOW = "context_window", "Context window exceeded"
    CONTENT_POLICY = "content_policy", "Content policy violation"


class FallbackRule(models.Model):
    model_group = models.CharField(max_length=100)
    fallback_groups = ArrayField(models.CharField(max_length=100), help_text="Groups to try in order, comma-separated.")
    kind = models.CharField(max_length=16, choices=FallbackKind.choices, default=FallbackKind.GENERAL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "model_group"]
        constraints = [models.UniqueConstraint(fields=["model_group", "kind"], name="one_fallback_rule_per_kind")]

    def __str__(self) -> str:
        return f"{self.model_group} → {', '.join(self.fallback_groups)} ({self.get_kind_display()})"

    def clean(self) -> None:
        groups = [group.strip() for group in self.fallback_groups or [] if group.strip()]
        if not groups:
            raise ValidationError({"fallback_groups": "Name at least one group to fall back to."})
        if self.model_group in groups:
            raise ValidationError({"fallback_groups": "A group cannot fall back to itself."})
        if len(set(groups)) != len(groups):
            raise ValidationError({"fallback_groups": "A group is listed twice."})
        self.fallback_groups = groups
        known = set(Deployment.objects.filter(model_group__in=groups).values_list("model_group", flat=True))
        missing = [group for group in groups if group not in known]
        if missing:
            raise ValidationError({"fallback_groups": f"No deployment serves: {', '.join(missing)}."})
        graph: dict[str, list[str]] = {}
        for rule in FallbackRule.objects.filter(kind=self.kind).exclude(pk=self.pk):
            graph[rule.model_group] = list(rule.fallback_groups)
        graph[self.model_group] = groups
        cycle = find_cycle(graph, self.model_group)
        if cycle:
            raise ValidationError({"fallback_groups": f"This rule makes a fallback cycle: {' → '.join(cycle)}."})


def find_cycle(graph: dict[str, list[str]], start: str) -> list[str] | None:
    """A path start → ... → start through the graph, if one exists."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, []):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


class RoutingStrategy(models.TextChoices):
    SIMPLE_SHUFFLE = "simple-shuffle", "Simple shuffle (weighted)"
    LEAST_BUSY = "least-busy", "Least busy"
    USAGE_BASED = "usage-based-routing", "Usage based"
    USAGE_BASED_V2 = "usage-based-routing-v2", "Usage based v2 (enforces rpm/tpm)"
    LATENCY_BASED = "latency-based-routing", "Lowest latency"
    COST_BASED = "cost-based-routing", "Lowest cost"
    LAR1 = "lar1", "LAR1"


RETRY_POLICY_FIELDS = (
    "BadRequestErrorRetries",
    "AuthenticationErrorRetries",
    "TimeoutErrorRetries",
    "RateLimitErrorRetries",
    "ContentPolicyViolationErrorRetries",
    "InternalServerErrorRetries",
    "ServiceUnavailableErrorRetries",
    "NotFoundErrorRetries",
)


class RouterSettings(models.Model):
    """One row: how the Router routes, retries and cools down."""

    routing_strategy = models.CharField(
        max_length=32, choices=RoutingStrategy.choices, default=RoutingStrategy.SIMPLE_SHUFFLE
    )
    num_retries = models.PositiveIntegerField(default=1, help_text="Retries per deployment group.")
    retry_policy = models.JSONField(
        default=dict,
        blank=True,
        help_text='Retries per error, e.g. {"TimeoutErrorRetries": 0, "RateLimitErrorRetries": 2}.',
    )
    timeout = models.FloatField(default=60, validators=[MinValueValidator(0.1)], help_text="Seconds per call.")
    stream_timeout = models.FloatField(
        default=60, validators=[MinValueValidator(0.1)], help_text="Seconds to wait for a stream to start."
    )
    allowed_fails = models.PositiveIntegerField(default=1, help_text="Failures in a minute before cooldown.")
    cooldown_time = models.FloatField(default=30, validators=[MinValueValidator(0)], help_text="Seconds.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "router settings"
        verbose_name_plural = "router settings"

    def __str__(self) -> str:
        return "Router settings"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> RouterSettings:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj

    def effective_retry_policy(self) -> dict[str, int]:
        """The operator's policy, with timeouts not retried unless they say otherwise: a provider
        that hung once will likely hang again, so a timeout goes straight to the fallback."""
        return {"TimeoutErrorRetries": 0, **(self.retry_policy or {})}

    def clean(self) -> None:
        if not isinstance(self.retry_policy, dict):
            raise ValidationError({"retry_policy": "The retry policy must be a JSON object."})
        unknown = set(self.retry_policy) - set(RETRY_POLICY_FIELDS)
        if unknown:
            raise ValidationError(
                {
                    "retry_policy": f"Unknown error type(s): {', '.join(sorted(unknown))}. "
                    f"Known: {', '.join(RETRY_POLICY_FIELDS)}."
                }
            )
        bad = [key for key, value in self.retry_policy.items() if not isinstance(value, int) or value < 0]
        if bad:
            raise ValidationError({"retry_policy": f"Retries must be whole numbers ≥ 0: {', '.join(bad)}."})


class AuditLogEntry(models.Model):
    """Who changed which piece of provider configuration, when, and how (never a key's value)."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_label = models.CharField(max_length=150, blank=True, help_text="The user or command that made it.")
    action = models.CharField(max_length=16)  # created / changed / deleted
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=300)
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        return (
            f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.object_type} {self.object_repr}"
        )
