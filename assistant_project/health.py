"""``GET /health``: the state of the database, Redis and the Celery workers, each checked for real."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check()
    except Exception as exc:  # any failure means "down"; its class name is enough to diagnose
        return {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
    result = {"status": "up", "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
    if detail:
        result.update(detail)
    return result


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_redis() -> None:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=settings.HEALTH_CHECK_TIMEOUT)
    try:
        client.ping()
    finally:
        client.close()


def _check_celery() -> dict[str, Any]:
    # A real round trip: a task through the broker, run by a worker, its result back through Redis.
    from celery.exceptions import TimeoutError as CeleryTimeout

    from assistant_project.accounts.tasks import ping

    timeout = settings.HEALTH_CHECK_TIMEOUT
    result = ping.apply_async(expires=timeout)
    try:
        reply = result.get(timeout=timeout)
    except CeleryTimeout:
        raise RuntimeError(f"no Celery worker answered a ping within {timeout} s") from None
    finally:
        result.forget()
    return {"worker": reply["pong"]}


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": _timed(_check_database),
        "redis": _timed(_check_redis),
        "celery": _timed(_check_celery),
    }
    healthy = all(check["status"] == "up" for check in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
    )
