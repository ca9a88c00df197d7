"""Thin tasks for chat."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from .models import Message


@shared_task(name="chat.interrupt_stale_streams")
def interrupt_stale_streams() -> int:
    return Message.objects.interrupt_stale_streams(settings.CHAT_STREAM_STALE_SECONDS)
