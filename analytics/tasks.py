"""Periodic upkeep of the call table: hourly roll-ups and retention."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import queries


@shared_task(name="analytics.rollup", time_limit=900, soft_time_limit=870)
def rollup() -> int:
    return queries.rollup()


@shared_task(name="analytics.prune", time_limit=3600, soft_time_limit=3570)
def prune() -> int:
    return queries.prune(settings.ANALYTICS_RETENTION_DAYS)
