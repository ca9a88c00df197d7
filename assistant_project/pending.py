"""Marks, kept in Redis beside the Celery queue, of the background tasks that were sent and have not
finished. Redis restarted (the embedded one keeps nothing on disk) loses the queue and the marks
together, so a document or transcription still waiting whose mark is gone has lost its task; the
recovery step at worker start and the periodic sweep send it again (see ``documents.services.recover``
and ``audio.services.recover``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import timezone

KEY = "pending:{kind}:{pk}"
KEEP_SECONDS = 7 * 86400  # a mark outlives any queue wait
GRACE_SECONDS = 10  # a row this new may still be on its way to the queue (enqueued on commit)


def mark(kind: str, pk: int) -> None:
    cache.set(KEY.format(kind=kind, pk=pk), 1, timeout=KEEP_SECONDS)


def clear(kind: str, pk: int) -> None:
    cache.delete(KEY.format(kind=kind, pk=pk))


def marked(kind: str, pks: Iterable[int]) -> set[int]:
    keys = {KEY.format(kind=kind, pk=pk): pk for pk in pks}
    if not keys:
        return set()
    return {keys[key] for key in cache.get_many(list(keys))}


def lost(kind: str, unfinished: QuerySet[Any], waiting_status: str, stale_after: int) -> list[int]:
    """The rows of ``unfinished`` whose task was lost, touched so that the next sweep waits again:
    unmarked (Redis lost the queue) and older than the grace period, or past ``waiting_status`` (a
    worker had started) with no progress for ``stale_after`` seconds (that worker died)."""
    now = timezone.now()
    rows: list[tuple[int, str, datetime]] = list(unfinished.values_list("pk", "status", "updated_at"))
    have_mark = marked(kind, [pk for pk, _, _ in rows])
    unmarked_before = now - timedelta(seconds=GRACE_SECONDS)
    stale_before = now - timedelta(seconds=stale_after)
    found = [
        pk
        for pk, status, updated_at in rows
        if (pk not in have_mark and updated_at < unmarked_before)
        or (status != waiting_status and updated_at < stale_before)
    ]
    unfinished.model.objects.filter(pk__in=found).update(updated_at=now)
    return found
