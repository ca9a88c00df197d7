"""The gateway routes, retries, falls back and cools down against a real HTTP provider (the fake),
and records every attempt."""

from __future__ import annotations

import asyncio
import time

import pytest

from analytics.models import LLMCall
from providers import gateway
from tests.llm import LLMSetup

pytestmark = pytest.mark.slow

CHAT = gateway.CallContext(app="chat")
HELLO = [{"role": "user", "content": "hello there"}]


def calls(trace_id: str) -> list[LLMCall]:
    return list(LLMCall.objects.filter(trace_id=trace_id).order_by("attempt"))


def test_500_on_primary_is_answered_by_the_fallback_group_and_both_attempts_are_recorded(llm: LLMSetup) -> None:
    primary = llm.deployment("primary", "error-500")
    backup = llm.deployment("backup", input_cost_per_token="0.000001", output_cost_per_token="0.000002")
    llm.fallback("primary", "backup")

    result = gateway.chat("primary", HELLO, context=CHAT)

    assert result.text == llm.fake.reply
    outcome = result.outcome
    assert outcome.served_by is not None and outcome.served_by.id == backup.pk
    assert outcome.fallbacks == ["backup"]
    rows = calls(outcome.trace_id)
    assert [(row.model_group, row.status) for row in rows][-1] == ("backup", "success")
    failed = [row for row in rows if row.status == "failure"]
    assert failed and all(row.deployment_id == primary.pk for row in failed)
    assert all(row.error_type == "InternalServerError" for row in failed)
    assert rows[-1].is_fallback and rows[-1].requested_group == "primary"
    # Cost from the operator's prices and the provider's reported usage (2 prompt, 9 completion tokens).
    assert rows[-1].prompt_tokens == 2 and rows[-1].completion_tokens == 9
    assert float(rows[-1].cost) == pytest.approx(2 * 0.000001 + 9 * 0.000002)
    assert len(llm.fake.requests_for("/chat/completions", llm.fake_model(primary))) == len(failed)


async def test_async_fallback_records_the_same_way(llm: LLMSetup) -> None:
    await asyncio.to_thread(llm.deployment, "primary", "error-500")
    await asyncio.to_thread(llm.deployment, "backup")
    await asyncio.to_thread(llm.fallback, "primary", "backup")

    result = await gateway.achat("primary", HELLO, context=CHAT)

    assert result.outcome.fallbacks == ["backup"]
    rows = await asyncio.to_thread(calls, result.outcome.trace_id)
    assert [row.status for row in rows].count("failure") >= 1
    assert rows[-1].status == "success" and rows[-1].model_group == "backup"
    summary = result.outcome.summary()
    assert summary["provider"] == llm.provider.name and summary["fallbacks"] == ["backup"]
    assert summary["attempts"] == len(rows)


def test_rate_limited_deployment_cools_down_then_serves_again(llm: LLMSetup) -> None:
    llm.router(allowed_fails=1, cooldown_time=2, num_retries=2)
    flaky = llm.deployment("pool", "ok")
    steady = llm.deployment("pool", "ok")
    flaky_model = llm.fake_model(flaky)
    llm.fake.set_behaviour(flaky_model, "rate-limit")

    served = [gateway.chat("pool", HELLO, context=CHAT).outcome.served_by for _ in range(12)]

    assert all(info is not None and info.id == steady.pk for info in served)
    hits = llm.fake.requests_for("/chat/completions", flaky_model)
    assert 1 <= len(hits) <= 2, "a cooled-down deployment gets no traffic"
    assert flaky.pk in gateway.cooldowns([flaky.pk, steady.pk])
    assert LLMCall.objects.filter(deployment=flaky, status="failure", error_type="RateLimitError").exists()

    llm.fake.set_behaviour(flaky_model, None)
    time.sleep(2.5)
    assert gateway.cooldowns([flaky.pk]) == set()
    again = {gateway.chat("pool", HELLO, context=CHAT).outcome.served_by.id for _ in range(20)}  # type: ignore[union-attr]
    assert flaky.pk in again, "after the cooldown the deployment is used again"


def test_timeout_falls_back_within_timeout_plus_one_second(llm: LLMSetup) -> None:
    llm.router(timeout=1.0)
    llm.deployment("hangs", "timeout")
    llm.deployment("quick")
    llm.fallback("hangs", "quick")
    gateway.chat("quick", HELLO, context=CHAT)  # the Router is built and warm

    started = time.monotonic()
    result = gateway.chat("hangs", HELLO, context=CHAT)
    elapsed = time.monotonic() - started

    assert result.outcome.served_by is not None and result.outcome.served_by.model_group == "quick"
    assert elapsed < 1.0 + 1.0, elapsed
    rows = calls(result.outcome.trace_id)
    assert rows[0].error_type == "Timeout" and rows[-1].status == "success"


def test_context_length_error_takes_the_context_window_fallback(llm: LLMSetup) -> None:
    llm.deployment("small", "context-length", context_window=4096)
    big = llm.deployment("big", context_window=128000)
    llm.deployment("general-backup")
    llm.fallback("small", "big", kind="context_window")
    llm.fallback("small", "general-backup")

    result = gateway.chat("small", HELLO, context=CHAT)

    assert result.outcome.served_by is not None and result.outcome.served_by.id == big.pk
    rows = calls(result.outcome.trace_id)
    assert rows[0].error_type == "ContextWindowExceededError"


def test_content_policy_error_takes_the_content_policy_fallback(llm: LLMSetup) -> None:
    llm.deployment("strict", "content-policy")
    lenient = llm.deployment("lenient")
    llm.fallback("strict", "lenient", kind="content_policy")

    result = gateway.chat("strict", HELLO, context=CHAT)

    assert result.outcome.served_by is not None and result.outcome.served_by.id == lenient.pk
    assert calls(result.outcome.trace_id)[0].error_type == "ContentPolicyViolationError"


def test_all_deployments_down_is_a_clear_typed_error(llm: LLMSetup) -> None:
    llm.deployment("down", "error-500")
    llm.deployment("down-too", "error-500")
    llm.fallback("down", "down-too")

    with pytest.raises(gateway.GatewayError) as raised:
        gateway.chat("down", HELLO, context=CHAT)

    error = raised.value
    assert error.kind == "unavailable" and error.status == 503
    assert "Every deployment" in error.message and "Traceback" not in error.message
    assert error.outcome is not None
    rows = calls(error.outcome.trace_id)
    assert rows and all(row.status == "failure" for row in rows)
    assert {row.model_group for row in rows} == {"down", "down-too"}


def test_unknown_disabled_and_wrong_mode_groups_are_refused_before_any_call(llm: LLMSetup) -> None:
    llm.deployment("chatty")
    disabled = llm.deployment("off")
    disabled.enabled = False
    disabled.save()
    llm.deployment("vectors", mode="embedding")
    gateway.rebuild_now()
    llm.fake.reset()

    for group, kind in (("nope", "unknown_model"), ("off", "unknown_model"), ("vectors", "wrong_mode")):
        with pytest.raises(gateway.GatewayError) as raised:
            gateway.chat(group, HELLO, context=CHAT)
        assert raised.value.kind == kind
    assert llm.fake.requests == []


def test_callers_cannot_pass_provider_parameters(llm: LLMSetup) -> None:
    llm.deployment("chatty")
    for name in ("api_base", "api_key", "base_url", "headers", "extra_headers", "custom_llm_provider", "mock_response"):
        with pytest.raises(gateway.GatewayError) as raised:
            gateway.chat("chatty", HELLO, context=CHAT, **{name: "http://attacker.example"})
        assert raised.value.kind == "bad_request" and name in raised.value.message
    with pytest.raises(gateway.GatewayError):
        gateway.chat("chatty", HELLO, context=CHAT, frobnicate=1)
    assert llm.fake.requests == []


async def test_stream_delivers_tokens_with_ttft_and_usage(llm: LLMSetup) -> None:
    await asyncio.to_thread(llm.deployment, "streamer", output_cost_per_token="0.00001")

    stream = gateway.astream_chat("streamer", HELLO, context=CHAT)
    parts = [part async for part in stream]

    assert len(parts) > 3 and "".join(parts) == llm.fake.reply
    assert stream.result is not None
    outcome = stream.result.outcome
    assert outcome.ttft_ms is not None and 0 < outcome.ttft_ms <= outcome.latency_ms
    assert outcome.usage.completion_tokens == 9
    row = (await asyncio.to_thread(calls, outcome.trace_id))[-1]
    assert row.status == "success" and float(row.cost) == pytest.approx(9 * 0.00001) and row.ttft_ms is not None


async def test_stream_that_dies_midway_raises_with_the_partial_text_kept(llm: LLMSetup) -> None:
    await asyncio.to_thread(llm.deployment, "fragile", "stream-dies")

    stream = gateway.astream_chat("fragile", HELLO, context=CHAT)
    received: list[str] = []
    with pytest.raises(gateway.StreamInterrupted) as raised:
        async for part in stream:
            received.append(part)

    assert raised.value.partial_text == "".join(received) != ""
    assert llm.fake.reply.startswith(raised.value.partial_text)
    rows = await asyncio.to_thread(calls, raised.value.outcome.trace_id)  # type: ignore[union-attr]
    assert rows[-1].status == "failure" and rows[-1].completion_tokens > 0


async def test_abandoned_stream_is_recorded_with_its_partial_usage(llm: LLMSetup) -> None:
    await asyncio.to_thread(llm.deployment, "slowpoke", "slow")

    stream = gateway.astream_chat("slowpoke", HELLO, context=CHAT)
    iterator = stream.__aiter__()
    first = await iterator.__anext__()
    await stream.aclose()

    assert first
    rows = await asyncio.to_thread(lambda: list(LLMCall.objects.filter(model_group="slowpoke")))
    assert len(rows) == 1
    assert rows[0].status == "abandoned" and rows[0].error_type == "ClientDisconnected"
    assert rows[0].prompt_tokens > 0


def test_sync_stream_returns_the_result_when_exhausted(llm: LLMSetup) -> None:
    llm.deployment("streamer")
    stream = gateway.stream_chat("streamer", HELLO, context=CHAT)
    parts: list[str] = []
    while True:
        try:
            parts.append(next(stream))
        except StopIteration as stop:
            result = stop.value
            break
    assert "".join(parts) == result.text == llm.fake.reply
    assert calls(result.outcome.trace_id)[-1].status == "success"
