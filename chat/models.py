"""Conversations and their messages. Every lookup starts from the user (``for_user``)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

TITLE_LENGTH = 60


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def for_user(self, user: AbstractBaseUser | AnonymousUser) -> ConversationQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self.filter(owner_id=user.pk)

    def search(self, query: str) -> ConversationQuerySet:
        query = query.strip()
        if not query:
            return self
        matching = Message.objects.filter(content__icontains=query).values("conversation_id")
        return self.filter(Q(title__icontains=query) | Q(pk__in=matching))


class Conversation(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    model_group = models.CharField(max_length=100)
    system_prompt = models.TextField(blank=True, max_length=20000)
    temperature = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)])
    collections = models.ManyToManyField(
        "documents.Collection", blank=True, related_name="conversations", help_text="Answers are grounded in these."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="conversation_owner_recent")]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"

    @property
    def display_title(self) -> str:
        return self.title or "New chat"

    def title_from(self, text: str) -> None:
        """A first title from the first message, cut on a word boundary."""
        line = " ".join(text.split())
        if len(line) > TITLE_LENGTH:
            line = line[:TITLE_LENGTH].rsplit(" ", 1)[0] + "…"
        self.title = line


class MessageRole(models.TextChoices):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"


class MessageStatus(models.TextChoices):
    COMPLETE = "complete", "Complete"
    STREAMING = "streaming", "Streaming"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"
    INTERRUPTED = "interrupted", "Interrupted"


class MessageQuerySet(models.QuerySet["Message"]):
    def for_user(self, user: AbstractBaseUser | AnonymousUser) -> MessageQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self.filter(conversation__owner_id=user.pk)

    def _stale_streams(self, stale_after: float) -> MessageQuerySet:
        cutoff = timezone.now() - timedelta(seconds=stale_after)
        return self.filter(status=MessageStatus.STREAMING, updated_at__lt=cutoff)

    def interrupt_stale_streams(self, stale_after: float) -> int:
        """Mark answers still "streaming" with no sign of life (a partial save or heartbeat) for
        ``stale_after`` seconds as interrupted, keeping their partial text: the process streaming
        them died. Returns how many."""
        return self._stale_streams(stale_after).update(status=MessageStatus.INTERRUPTED, updated_at=timezone.now())

    async def ainterrupt_stale_streams(self, stale_after: float) -> int:
        return await self._stale_streams(stale_after).aupdate(
            status=MessageStatus.INTERRUPTED, updated_at=timezone.now()
        )


class Message(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=MessageRole.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.COMPLETE)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # While streaming: touched by every partial save and heartbeat (see chat.services.stream).
    updated_at = models.DateTimeField(auto_now=True)
    # What served an assistant message, and what it cost.
    model_group = models.CharField(max_length=100, blank=True)
    deployment = models.ForeignKey(
        "providers.Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    provider = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=200, blank=True)
    trace_id = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    fallbacks = models.JSONField(default=list, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=12, default=Decimal(0))
    latency_ms = models.FloatField(null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True)
    sources = models.JSONField(default=list, blank=True, help_text="Passages the answer was grounded in.")
    downgraded_from = models.CharField(
        max_length=100, blank=True, help_text="The model group asked for, when a nearly spent budget moved the answer."
    )
    context_dropped = models.PositiveIntegerField(
        default=0, help_text="Earlier messages left out of the request to fit the context window."
    )

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["conversation", "created_at", "id"], name="message_conversation_order"),
            # The sweep for answers whose streaming process died reads only the few streaming ones.
            models.Index(fields=["updated_at"], name="message_streaming", condition=Q(status="streaming")),
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.pk} ({self.status})"

    @property
    def is_assistant(self) -> bool:
        return self.role == MessageRole.ASSISTANT

    @property
    def retried(self) -> bool:
        return self.attempts > 1 + len(self.fallbacks or [])

    def apply_outcome(self, outcome: Any) -> None:
        """Copy what served the answer (a gateway ``CallOutcome``) onto the message."""
        served = outcome.served_by
        self.model_group = served.model_group if served else outcome.requested_group
        self.deployment_id = served.id if served else None
        self.provider = served.provider if served else ""
        self.model = served.model if served else ""
        self.trace_id = outcome.trace_id
        self.attempts = len(outcome.attempts)
        self.fallbacks = outcome.fallbacks
        self.prompt_tokens = outcome.usage.prompt_tokens
        self.completion_tokens = outcome.usage.completion_tokens
        self.cost = outcome.cost
        self.latency_ms = outcome.latency_ms
        self.ttft_ms = outcome.ttft_ms
        self.downgraded_from = outcome.downgraded_from or ""

    def as_api(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "role": self.role,
            "content": self.content,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            **(
                {
                    "model_used": self.model_group,
                    "provider": self.provider,
                    "model": self.model,
                    "usage": {
                        "prompt_tokens": self.prompt_tokens,
                        "completion_tokens": self.completion_tokens,
                        "total_tokens": self.prompt_tokens + self.completion_tokens,
                    },
                    "cost": float(self.cost),
                    "latency_ms": self.latency_ms,
                    "ttft_ms": self.ttft_ms,
                    "fallbacks": self.fallbacks,
                    "attempts": self.attempts,
                    "context_dropped": self.context_dropped,
                    "sources": self.sources,
                    "downgraded_from": self.downgraded_from or None,
                    "error": self.error,
                }
                if self.is_assistant
                else {}
            ),
        }
