"""/health checks the database, Redis and a Celery worker with real round trips."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import WorkerProcess

pytestmark = pytest.mark.slow


def test_all_up_with_a_worker(celery_worker: WorkerProcess, client: Client) -> None:
    response = client.get("/health")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "up",
        "redis": "up",
        "celery": "up",
    }
    assert body["checks"]["celery"]["worker"]


def test_worker_down_is_503(transactional_db: None, client: Client, settings) -> None:
    settings.HEALTH_CHECK_TIMEOUT = 1
    response = client.get("/health")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["status"] == "up"
    assert body["checks"]["redis"]["status"] == "up"
    assert body["checks"]["celery"]["status"] == "down"
    assert "no Celery worker answered" in body["checks"]["celery"]["error"]


def test_redis_down_is_503(db: None, client: Client, settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.HEALTH_CHECK_TIMEOUT = 1
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["status"] == "down"
