"""A configuration change made in the admin is served by every process within 2 s, no restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from django.test import Client

from providers import gateway
from tests.conftest import ROOT, database_url_for_tests
from tests.llm import LLMSetup

pytestmark = pytest.mark.slow


class OtherProcess:
    def __init__(self) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": database_url_for_tests(),
            "DJANGO_SETTINGS_MODULE": "assistant_project.settings",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.gateway_client"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert json.loads(self.process.stdout.readline()) == {"ready": True}  # type: ignore[union-attr]

    def ask(self, group: str) -> dict[str, str]:
        self.process.stdin.write(group + "\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        return json.loads(self.process.stdout.readline())  # type: ignore[union-attr,no-any-return]

    def stop(self) -> None:
        self.process.stdin.close()  # type: ignore[union-attr]
        self.process.wait(10)


@pytest.fixture
def other_process(llm: LLMSetup) -> Iterator[OtherProcess]:
    other = OtherProcess()
    yield other
    other.stop()


def here(group: str) -> dict[str, str]:
    try:
        served = gateway.chat(group, [{"role": "user", "content": "hi"}], context=gateway.CallContext("api")).outcome
        return {"model": served.served_by.model if served.served_by else ""}
    except gateway.GatewayError as exc:
        return {"error": exc.kind}


def deployment_form(deployment, **values: str) -> dict[str, str]:
    form = {
        "model_group": deployment.model_group,
        "litellm_model": deployment.litellm_model,
        "provider": str(deployment.provider_id),
        "mode": deployment.mode,
        "enabled": "on",
        "rpm": "",
        "tpm": "",
        "weight": "1",
        "context_window": "",
        "max_output_tokens": "",
        "input_cost_per_token": "0",
        "output_cost_per_token": "0",
        "input_cost_per_second": "0",
        "output_cost_per_character": "0",
        "cost_per_query": "0",
        "probe_enabled": "unknown",
    }
    form.update(values)
    return {key: value for key, value in form.items() if value is not None}


def wait_until(check, expected: dict[str, str], limit: float) -> float:
    started = time.monotonic()
    while True:
        answer = check()
        elapsed = time.monotonic() - started
        if answer == expected:
            return elapsed
        assert elapsed < limit, f"still {answer} after {elapsed:.1f} s"
        time.sleep(0.05)


def test_both_processes_serve_a_change_within_two_seconds(
    llm: LLMSetup, other_process: OtherProcess, charlie_client: Client
) -> None:
    deployment = llm.deployment("switch")
    old = {"model": deployment.litellm_model}
    assert other_process.ask("switch") == old
    assert here("switch") == old
    assert other_process.ask("newcomer") == {"error": "unknown_model"}

    new_model = f"openai/{llm.model_name()}"
    response = charlie_client.post(
        f"/admin/providers/deployment/{deployment.pk}/change/", deployment_form(deployment, litellm_model=new_model)
    )
    assert response.status_code == 302
    changed_at = time.monotonic()
    wait_until(lambda: other_process.ask("switch"), {"model": new_model}, 2.0)
    wait_until(lambda: here("switch"), {"model": new_model}, 2.0 - (time.monotonic() - changed_at))

    # A new group added in the admin appears; a disabled one disappears.
    response = charlie_client.post(
        "/admin/providers/deployment/add/",
        deployment_form(deployment, model_group="newcomer", litellm_model=f"openai/{llm.model_name()}"),
    )
    assert response.status_code == 302
    assert wait_until(lambda: set(other_process.ask("newcomer")), {"model"}, 2.0) < 2.0  # type: ignore[arg-type]
    response = charlie_client.post(
        f"/admin/providers/deployment/{deployment.pk}/change/",
        {k: v for k, v in deployment_form(deployment, litellm_model=new_model).items() if k != "enabled"},
    )
    assert response.status_code == 302
    wait_until(lambda: other_process.ask("switch"), {"error": "unknown_model"}, 2.0)
