"""Operators configure providers in the admin: audited changes, fallback cycles refused, routing
strategies, test connection, and deployment health in the list."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from analytics.models import LLMCall
from providers import gateway
from providers.health import DEGRADED, HEALTHY, UNHEALTHY, deployment_health, status_for
from providers.models import AuditLogEntry, Deployment, FallbackRule, Provider, RouterSettings, RoutingStrategy
from tests.llm import PLANTED_KEY, LLMSetup


def provider_form(**values: str) -> dict[str, str]:
    return {
        "name": "acme",
        "kind": "openai_compatible",
        "enabled": "on",
        "api_key": "",
        "api_base": "http://127.0.0.1:9/v1",
        "extra_params": "{}",
        "deployments-TOTAL_FORMS": "0",
        "deployments-INITIAL_FORMS": "0",
        **values,
    }


def test_every_change_is_audited_with_who_and_what_but_never_the_key(charlie_client: Client, charlie) -> None:
    charlie_client.post("/admin/providers/provider/add/", provider_form(api_key=PLANTED_KEY))
    provider = Provider.objects.get(name="acme")
    charlie_client.post(
        f"/admin/providers/provider/{provider.pk}/change/", provider_form(api_base="http://10.0.0.1/v1")
    )
    charlie_client.post(
        f"/admin/providers/provider/{provider.pk}/change/",
        provider_form(api_base="http://10.0.0.1/v1", api_key="sk-another-key-5678"),
    )
    deployment = Deployment.objects.create(model_group="gpt-4", litellm_model="openai/gpt-4", provider=provider)
    charlie_client.post(f"/admin/providers/deployment/{deployment.pk}/delete/", {"post": "yes"})

    entries = list(AuditLogEntry.objects.order_by("id"))
    created, moved, rekeyed = entries[0], entries[1], entries[2]
    assert created.action == "created" and created.actor == charlie and created.actor_label == "charlie"
    assert created.changes["api_key_encrypted"] == "API key set"
    assert moved.action == "changed"
    assert moved.changes == {"api_base": {"from": "http://127.0.0.1:9/v1", "to": "http://10.0.0.1/v1"}}
    assert rekeyed.changes == {"api_key_encrypted": "API key replaced"}
    # The deployment made in code is attributed to "system"; its deletion in the admin to charlie.
    assert entries[3].actor_label == "system" and entries[3].action == "created"
    assert entries[-1].action == "deleted" and entries[-1].actor == charlie
    for entry in entries:
        assert PLANTED_KEY not in str(entry.changes) and "sk-another" not in str(entry.changes)
    page = charlie_client.get("/admin/providers/auditlogentry/").content.decode()
    assert "acme" in page and "charlie" in page


def test_fallback_cycles_are_refused_with_a_clear_message(charlie_client: Client) -> None:
    provider = Provider.objects.create(name="acme", kind="openai")
    for group in ("a", "b", "c"):
        Deployment.objects.create(model_group=group, litellm_model=f"openai/{group}", provider=provider)
    FallbackRule.objects.create(model_group="a", fallback_groups=["b"])
    FallbackRule.objects.create(model_group="b", fallback_groups=["c"])

    response = charlie_client.post(
        "/admin/providers/fallbackrule/add/", {"model_group": "c", "kind": "general", "fallback_groups": "a"}
    )
    assert response.status_code == 200
    assert "This rule makes a fallback cycle: c → a → b → c." in response.content.decode()
    assert not FallbackRule.objects.filter(model_group="c").exists()

    to_itself = charlie_client.post(
        "/admin/providers/fallbackrule/add/", {"model_group": "c", "kind": "general", "fallback_groups": "c"}
    )
    assert "cannot fall back to itself" in to_itself.content.decode()
    unknown = charlie_client.post(
        "/admin/providers/fallbackrule/add/", {"model_group": "c", "kind": "general", "fallback_groups": "zzz"}
    )
    assert "No deployment serves: zzz" in unknown.content.decode()
    # The same edge in another kind is no cycle.
    ok = charlie_client.post(
        "/admin/providers/fallbackrule/add/", {"model_group": "c", "kind": "context_window", "fallback_groups": "a"}
    )
    assert ok.status_code == 302


def test_extra_params_refuse_keys_and_unknown_names(charlie_client: Client) -> None:
    bad = charlie_client.post("/admin/providers/provider/add/", provider_form(extra_params='{"api_key": "x"}'))
    assert "Unknown parameter(s): api_key" in bad.content.decode()
    ok = charlie_client.post(
        "/admin/providers/provider/add/", provider_form(extra_params='{"api_version": "2024-06-01"}')
    )
    assert ok.status_code == 302
    assert Provider.objects.get(name="acme").extra_params == {"api_version": "2024-06-01"}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", RoutingStrategy.values)
def test_every_routing_strategy_builds_a_router_that_serves(llm: LLMSetup, strategy: str) -> None:
    prices = {"input_cost_per_token": "0.000001", "output_cost_per_token": "0.000002"}
    llm.deployment("chatty", rpm=1000, tpm=1000000, **prices)
    llm.deployment("chatty", rpm=1000, tpm=1000000, **prices)
    llm.router(routing_strategy=strategy, retry_policy={"RateLimitErrorRetries": 2})

    result = gateway.chat("chatty", [{"role": "user", "content": "hi"}], context=gateway.CallContext(app="chat"))

    assert result.text == llm.fake.reply
    assert gateway._current_state().router is not None


def test_retry_policy_with_unknown_errors_is_refused(charlie_client: Client) -> None:
    RouterSettings.load()
    response = charlie_client.post(
        "/admin/providers/routersettings/1/change/",
        {
            "routing_strategy": "simple-shuffle",
            "num_retries": "1",
            "retry_policy": '{"TeapotErrorRetries": 3}',
            "timeout": "60",
            "stream_timeout": "60",
            "allowed_fails": "1",
            "cooldown_time": "30",
        },
    )
    assert "Unknown error type(s): TeapotErrorRetries" in response.content.decode()


@pytest.mark.slow
def test_test_connection_action_shows_latency_or_the_error(llm: LLMSetup, charlie_client: Client) -> None:
    good = llm.deployment("good")
    bad = llm.deployment("bad", "error-500")
    response = charlie_client.post(
        "/admin/providers/deployment/",
        {"action": "test_connection", "_selected_action": [good.pk, bad.pk]},
        follow=True,
    )
    page = response.content.decode()
    assert re.search(rf"(?i)good → {llm.provider.name}:openai/ok-\S+: OK in \d+ ms", page), re.findall(
        r"<li class=\"(?:success|error)\">.*?</li>", page
    )
    assert "failed after" in page and "InternalServerError" in page
    probes = LLMCall.objects.filter(app="admin").order_by("deployment_id")
    assert [(call.deployment_id, call.status) for call in probes] == [(good.pk, "success"), (bad.pk, "failure")]


def test_health_thresholds() -> None:
    assert status_for(None) == "unknown"
    assert status_for(1.0) == HEALTHY
    assert status_for(0.96) == HEALTHY
    assert status_for(0.95) == DEGRADED
    assert status_for(0.81) == DEGRADED
    assert status_for(0.80) == UNHEALTHY


@pytest.mark.slow
def test_health_flips_as_the_provider_starts_failing_and_shows_in_the_admin_list(
    llm: LLMSetup, charlie_client: Client
) -> None:
    llm.router(allowed_fails=100, cooldown_time=1)
    deployment = llm.deployment("watched")
    context = gateway.CallContext(app="chat")
    hello = [{"role": "user", "content": "hi"}]
    for _ in range(20):
        gateway.chat("watched", hello, context=context)
    assert deployment_health([deployment.pk])[deployment.pk].status == HEALTHY
    page = charlie_client.get("/admin/providers/deployment/").content.decode()
    assert ">healthy<" in page and "100% of 20" in page

    llm.fake.set_behaviour(llm.fake_model(deployment), "error-500")
    llm.router(allowed_fails=100, cooldown_time=1, num_retries=0)
    for _ in range(2):
        with pytest.raises(gateway.GatewayError):
            gateway.chat("watched", hello, context=context)
    health = deployment_health([deployment.pk])[deployment.pk]
    assert health.status == DEGRADED and health.total == 22
    assert "InternalServerError" in health.last_error

    for _ in range(5):
        with pytest.raises(gateway.GatewayError):
            gateway.chat("watched", hello, context=context)
    health = deployment_health([deployment.pk])[deployment.pk]
    assert health.status == UNHEALTHY
    assert health.last_success is not None and health.last_error_at is not None
    assert health.last_error_at > health.last_success
    page = charlie_client.get("/admin/providers/deployment/").content.decode()
    assert ">unhealthy<" in page and "InternalServerError" in page
