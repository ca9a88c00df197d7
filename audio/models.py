"""Transcriptions and spoken clips. Every lookup starts from the user (``for_user``)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


def audio_path(instance: models.Model, filename: str) -> str:
    """Stored under a generated name; the user's filename is never a path."""
    return f"audio/{uuid.uuid4().hex}{PurePath(filename).suffix.lower()[:8]}"


class OwnedQuerySet(models.QuerySet[Any]):
    def for_user(self, user: AbstractBaseUser | AnonymousUser) -> OwnedQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self.filter(owner_id=user.pk)


class TranscriptionStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Transcribing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Served(models.Model):
    """What served a call, and what it cost."""

    model_group = models.CharField(max_length=100, blank=True)
    deployment = models.ForeignKey(
        "providers.Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    provider = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=200, blank=True)
    cost = models.DecimalField(max_digits=20, decimal_places=12, default=Decimal(0))

    class Meta:
        abstract = True

    def apply_outcome(self, outcome: Any) -> None:
        served = outcome.served_by
        self.model_group = served.model_group if served else outcome.requested_group
        self.deployment_id = served.id if served else None
        self.provider = served.provider if served else ""
        self.model = served.model if served else ""
        self.cost = outcome.cost


class Transcription(Served):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="transcriptions")
    audio = models.FileField(upload_to=audio_path, max_length=200)
    original_name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField(default=0)
    language_hint = models.CharField(max_length=16, blank=True)
    status = models.CharField(max_length=16, choices=TranscriptionStatus.choices, default=TranscriptionStatus.QUEUED)
    text = models.TextField(blank=True)
    language = models.CharField(max_length=32, blank=True)
    duration = models.FloatField(null=True, blank=True)
    segments = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.original_name

    @property
    def is_busy(self) -> bool:
        return self.status in (TranscriptionStatus.QUEUED, TranscriptionStatus.PROCESSING)

    def as_api(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "status": self.status,
            "text": self.text,
            "language": self.language or None,
            "duration": self.duration,
            "segments": self.segments,
            "provider": self.provider or None,
            "model": self.model or None,
            "cost": float(self.cost),
            "error": self.error or None,
        }


class SpeechClip(Served):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="speech_clips")
    text = models.TextField()
    voice = models.CharField(max_length=32)
    format = models.CharField(max_length=8)
    content_type = models.CharField(max_length=64)
    audio = models.FileField(upload_to=audio_path, max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.text[:50]
