"""Marks, kept in Redis beside the Celery queue, of the background tasks that were sent and have not
finished. Redis restarted (the embedded one keeps nothing on disk) loses the queue and the marks
together, so a document or transcription still waiting whose mark is gone has lost its task; the
recovery step at worker start and the periodic sweep send it again (see ``documents.services.recover``
and ``audio.services.recover``)."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.cache import cache

KEY = "pending:{kind}:{pk}"
KEEP_SECONDS = 7 * 86400  # a mark outlives any queue wait


def mark(kind: str, pk: int) -> None:
    cache.set(KEY.format(kind=kind, pk=pk), 1, timeout=KEEP_SECONDS)


def clear(kind: str, pk: int) -> None:
    cache.delete(KEY.format(kind=kind, pk=pk))


def marked(kind: str, pks: Iterable[int]) -> set[int]:
    keys = {KEY.format(kind=kind, pk=pk): pk for pk in pks}
    if not keys:
        return set()
    return {keys[key] for key in cache.get_many(list(keys))}
