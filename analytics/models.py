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

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["deployment", "-created_at"], name="llmcall_deployment_recent"),
            models.Index(fields=["user", "-created_at"], name="llmcall_user_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.trace_id[:8]} #{self.attempt} {self.model_group} {self.status}"
