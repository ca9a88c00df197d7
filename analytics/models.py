"""Every call through the gateway, one row per attempt (retries and fallbacks share a trace id)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models


class CallStatus(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    ABANDONED = "abandoned", "Abandoned by the client"


class CallType(models.TextChoices):
    CHAT = "chat", "Chat"
    EMBEDDING = "embedding", "Embedding"
    RERANK = "rerank", "Rerank"
    TRANSCRIPTION = "transcription", "Transcription"
    SPEECH = "speech", "Speech"


class App(models.TextChoices):
    CHAT = "chat", "Chat"
    DOCUMENTS = "documents", "Documents"
    AUDIO = "audio", "Audio"
    API = "api", "API"
    ADMIN = "admin", "Admin"
    PROBE = "probe", "Health probe"


class LLMCall(models.Model):
    created_at = models.DateTimeField(db_index=True)
    trace_id = models.CharField(max_length=64, db_index=True)
    attempt = models.PositiveIntegerField(default=1)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="llm_calls"
    )
    app = models.CharField(max_length=16, choices=App.choices)
    call_type = models.CharField(max_length=16, choices=CallType.choices)
    model_group = models.CharField(max_length=100)
    requested_group = models.CharField(max_length=100, help_text="The group the caller asked for.")
    deployment = models.ForeignKey(
        "providers.Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )
    provider = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=CallStatus.choices)
    is_fallback = models.BooleanField(default=False)
    error_type = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    audio_seconds = models.FloatField(default=0)
    characters = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=12, default=Decimal(0))
    latency_ms = models.FloatField(null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True)
    final = models.BooleanField(default=True, help_text="The last attempt of its request (one per request).")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["deployment", "-created_at"], name="llmcall_deployment_recent"),
            models.Index(fields=["user", "-created_at"], name="llmcall_user_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.trace_id[:8]} #{self.attempt} {self.model_group} {self.status}"


class BudgetPeriod(models.TextChoices):
    DAY = "day", "Per day"
    MONTH = "month", "Per month"


class BudgetQuerySet(models.QuerySet["Budget"]):
    def for_user_id(self, user_id: int | None) -> Budget | None:
        """The user's own budget, else the default one (no user), else none."""
        if user_id is None:
            return None
        own = self.filter(user_id=user_id).first()
        return own if own is not None else self.filter(user__isnull=True).first()


class Budget(models.Model):
    """A spending cap in USD per day or month, and optionally a request rate limit. A row without a
    user is the default for every user who has none of their own."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="budget"
    )
    period = models.CharField(max_length=8, choices=BudgetPeriod.choices, default=BudgetPeriod.MONTH)
    limit_usd = models.DecimalField(max_digits=12, decimal_places=4, help_text="USD per period.")
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True, help_text="Leave blank for no limit.")
    downgrade_group = models.CharField(
        max_length=100, blank=True, help_text="A cheaper chat model group used once the budget is nearly spent."
    )
    downgrade_at = models.DecimalField(
        max_digits=3, decimal_places=2, default=Decimal("0.90"), help_text="Fraction of the budget that triggers it."
    )

    objects = BudgetQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user"], condition=models.Q(user__isnull=True), name="one_default_budget")
        ]

    def __str__(self) -> str:
        who = self.user.get_username() if self.user else "everyone (default)"
        return f"{who}: ${self.limit_usd} {self.get_period_display().lower()}"


# Latency histogram buckets (upper bounds in milliseconds); the last bucket is everything above.
LATENCY_BUCKETS_MS = [50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000]


def empty_histogram() -> list[int]:
    return [0] * (len(LATENCY_BUCKETS_MS) + 1)


class LLMCallHourly(models.Model):
    """Calls rolled up per hour and dimension, so dashboards stay fast however large LLMCall grows."""

    hour = models.DateTimeField(help_text="The start of the hour, or of the day for daily rows.")
    grain = models.CharField(max_length=4, default="hour", help_text="hour, or day: a day's hours added up.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    app = models.CharField(max_length=16)
    call_type = models.CharField(max_length=16)
    model_group = models.CharField(max_length=100)
    deployment = models.ForeignKey(
        "providers.Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    provider = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16)
    error_type = models.CharField(max_length=64, blank=True)
    calls = models.PositiveIntegerField(default=0)
    fallbacks = models.PositiveIntegerField(default=0)
    retries = models.PositiveIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0, help_text="Final attempts: one per request.")
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=12, default=Decimal(0))
    latency_ms_sum = models.FloatField(default=0)
    latency_count = models.PositiveIntegerField(default=0)
    ttft_ms_sum = models.FloatField(default=0)
    ttft_count = models.PositiveIntegerField(default=0)
    # Histogram bucket counts (see LATENCY_BUCKETS_MS), as columns so that SQL can add them up.
    latency_b0 = models.PositiveIntegerField(default=0)
    latency_b1 = models.PositiveIntegerField(default=0)
    latency_b2 = models.PositiveIntegerField(default=0)
    latency_b3 = models.PositiveIntegerField(default=0)
    latency_b4 = models.PositiveIntegerField(default=0)
    latency_b5 = models.PositiveIntegerField(default=0)
    latency_b6 = models.PositiveIntegerField(default=0)
    latency_b7 = models.PositiveIntegerField(default=0)
    latency_b8 = models.PositiveIntegerField(default=0)
    latency_b9 = models.PositiveIntegerField(default=0)
    ttft_b0 = models.PositiveIntegerField(default=0)
    ttft_b1 = models.PositiveIntegerField(default=0)
    ttft_b2 = models.PositiveIntegerField(default=0)
    ttft_b3 = models.PositiveIntegerField(default=0)
    ttft_b4 = models.PositiveIntegerField(default=0)
    ttft_b5 = models.PositiveIntegerField(default=0)
    ttft_b6 = models.PositiveIntegerField(default=0)
    ttft_b7 = models.PositiveIntegerField(default=0)
    ttft_b8 = models.PositiveIntegerField(default=0)
    ttft_b9 = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["grain", "hour"], name="hourly_grain_hour"),
            models.Index(fields=["user", "grain", "hour"], name="hourly_user_grain_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.model_group} {self.status} x{self.calls}"


class RollupState(models.Model):
    """One row: the hour up to which LLMCall is rolled up (exclusive)."""

    rolled_up_to = models.DateTimeField(null=True, blank=True)
    days_rolled_up_to = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"rolled up to {self.rolled_up_to}"
