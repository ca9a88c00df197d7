"""A real worker process, consuming from the real (embedded) Redis."""

from __future__ import annotations

import pytest

from assistant_project.accounts.tasks import ping
from tests.conftest import WorkerProcess

pytestmark = pytest.mark.slow


def test_task_round_trip_through_a_real_worker(celery_worker: WorkerProcess) -> None:
    result = ping.delay()
    reply = result.get(timeout=20)
    assert reply["pong"]
    assert "accounts.ping" in celery_worker.log()
    assert "succeeded" in celery_worker.log()
