"""Thin tasks: take an id, call the service, which records any failure on the document."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import services


@shared_task(
    name="documents.ingest",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=settings.DOCUMENT_INGEST_TIME_LIMIT + 30,
    soft_time_limit=settings.DOCUMENT_INGEST_TIME_LIMIT,
)
def ingest_document(document_id: int) -> None:
    services.ingest(document_id)


@shared_task(name="documents.recover")
def recover_documents() -> list[int]:
    services.recover_reembeds()
    return services.recover(settings.TASK_STALE_SECONDS)


@shared_task(
    name="documents.reembed",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=settings.CELERY_TASK_TIME_LIMIT,
    soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
)
def reembed_collection(collection_id: int) -> None:
    services.reembed(collection_id)
