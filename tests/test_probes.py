"""Periodic health probes: a beat task fans out one cheap call per deployment that has probing on
(free providers by default, paid ones only when an operator turns it on), run by a real worker."""

from __future__ import annotations

import time

import pytest

from analytics.models import LLMCall
from providers.models import Deployment, Provider
from providers.tasks import probe_deployments
from tests.conftest import WorkerProcess
from tests.llm import LLMSetup
from tests.test_settings import load_settings

pytestmark = pytest.mark.slow


def test_probes_run_for_free_and_opted_in_deployments_only(llm: LLMSetup, celery_worker: WorkerProcess) -> None:
    paid = llm.deployment("paid")
    opted_in = llm.deployment("opted-in", probe_enabled=True)
    ollama = Provider.objects.create(name="ollama-box", kind="ollama", api_base=llm.fake.url)
    free = Deployment.objects.create(model_group="free", litellm_model="ollama/tiny", provider=ollama)
    opted_out = Deployment.objects.create(
        model_group="free-off", litellm_model="ollama/tiny-2", provider=ollama, probe_enabled=False
    )

    assert probe_deployments.delay().get(timeout=30) == 2

    deadline = time.monotonic() + 60
    while LLMCall.objects.filter(app="probe").count() < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    probed = dict(LLMCall.objects.filter(app="probe").values_list("deployment_id", "status"))
    assert probed.keys() == {opted_in.pk, free.pk}, celery_worker.log()[-3000:]
    assert probed[opted_in.pk] == "success"
    assert probed[free.pk] == "failure"  # the fake provider does not speak Ollama's API: recorded as a failure
    assert paid.pk not in probed and opted_out.pk not in probed


def test_probe_interval_schedules_the_beat_task_and_zero_turns_it_off() -> None:
    on = load_settings("CELERY_BEAT_SCHEDULE", SECRET_KEY="x" * 50, PROBE_INTERVAL="120")
    off = load_settings("CELERY_BEAT_SCHEDULE", SECRET_KEY="x" * 50, PROBE_INTERVAL="0")
    bad = load_settings("CELERY_BEAT_SCHEDULE", SECRET_KEY="x" * 50, PROBE_INTERVAL="soon")
    assert on.returncode == 0 and off.returncode == 0, on.stderr + off.stderr
    assert "'task': 'providers.probe_deployments', 'schedule': 120" in on.stdout
    assert "probe-deployments" not in off.stdout and "analytics.rollup" in off.stdout
    assert "PROBE_INTERVAL must be an integer" in bad.stderr
