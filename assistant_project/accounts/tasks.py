from __future__ import annotations

import socket

from celery import shared_task


@shared_task(name="accounts.ping", acks_late=False, time_limit=10, soft_time_limit=5)
def ping() -> dict[str, str]:
    """A no-op round trip through the broker and a worker, used by /health."""
    return {"pong": socket.gethostname()}
