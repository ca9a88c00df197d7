"""The Celery application. Tasks live in each app's ``tasks`` module."""

import os
from typing import Any

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant_project.settings")

app = Celery("assistant_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# Tasks that find work lost by a Redis restart or a dead worker, run whenever a worker starts (and
# periodically by beat, see CELERY_BEAT_SCHEDULE).
RECOVERY_TASKS = ["documents.recover", "audio.recover", "chat.interrupt_stale_streams"]


@worker_ready.connect
def recover_lost_work(sender: Any = None, **kwargs: Any) -> None:
    for name in RECOVERY_TASKS:
        app.send_task(name)
