"""Thin tasks: take an id, call the service, which records any failure on the transcription."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import services


@shared_task(
    name="audio.transcribe",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=settings.CELERY_TASK_TIME_LIMIT,
    soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
)
def transcribe_audio(transcription_id: int) -> None:
    services.transcribe(transcription_id)


@shared_task(name="audio.recover")
def recover_transcriptions() -> list[int]:
    return services.recover(settings.TASK_STALE_SECONDS)
