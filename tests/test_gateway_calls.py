"""Embeddings, rerank, transcription and speech through the gateway: results, what served, costs
from the operator's prices, and one analytics row per call."""

from __future__ import annotations

import asyncio
import math

import pytest

from analytics.models import LLMCall
from providers import gateway
from tests.fake_provider import embed_text, wav_bytes
from tests.llm import LLMSetup

pytestmark = pytest.mark.slow

DOCS = gateway.CallContext(app="documents", user_id=None)


def only_call(trace_id: str) -> LLMCall:
    rows = list(LLMCall.objects.filter(trace_id=trace_id))
    assert len(rows) == 1
    return rows[0]


def test_embeddings_come_back_in_order_with_usage_and_cost(llm: LLMSetup) -> None:
    deployment = llm.deployment("vectors", mode="embedding", input_cost_per_token="0.0000001")
    texts = ["the cat sat on the mat", "stock markets fell sharply", "a cat on a mat"]

    result = gateway.embed("vectors", texts, context=DOCS)

    assert len(result.vectors) == 3 and all(len(vector) == 384 for vector in result.vectors)
    assert result.vectors[0] == pytest.approx(embed_text(texts[0]))
    row = only_call(result.outcome.trace_id)
    assert row.call_type == "embedding" and row.app == "documents" and row.deployment_id == deployment.pk
    assert row.prompt_tokens == 6 + 4 + 5
    assert float(row.cost) == pytest.approx(15 * 0.0000001)


async def test_async_embeddings(llm: LLMSetup) -> None:
    await asyncio.to_thread(llm.deployment, "vectors", mode="embedding")
    result = await gateway.aembed("vectors", ["hello world"], context=DOCS)
    assert math.isclose(sum(value * value for value in result.vectors[0]), 1.0, rel_tol=1e-6)


def test_rerank_orders_documents_and_costs_per_query(llm: LLMSetup) -> None:
    deployment = llm.deployment("ranker", mode="rerank", cost_per_query="0.002")
    documents = ["bananas are yellow", "the capital of france is paris", "paris has the eiffel tower"]

    result = gateway.rerank("ranker", "what is the capital of france", documents, context=DOCS, top_n=2)

    assert [index for index, _ in result.results] == [1, 2]
    assert result.results[0][1] > result.results[1][1]
    assert llm.fake.requests_for("/v2/rerank"), "Cohere-style rerank goes to {api_base}/v2/rerank"
    row = only_call(result.outcome.trace_id)
    assert row.call_type == "rerank" and row.deployment_id == deployment.pk
    assert float(row.cost) == pytest.approx(0.002)


def test_transcription_costs_per_second_of_audio(llm: LLMSetup) -> None:
    deployment = llm.deployment("ears", mode="transcription", input_cost_per_second="0.0001")

    result = gateway.transcribe("ears", wav_bytes(2.0), "clip.wav", context=DOCS, language="en")

    assert result.text == llm.fake.transcript
    assert result.duration == pytest.approx(2.0) and result.segments
    sent = llm.fake.requests_for("/audio/transcriptions")[-1]
    assert sent.form["language"] == "en" and sent.form["response_format"] == "verbose_json"
    row = only_call(result.outcome.trace_id)
    assert row.deployment_id == deployment.pk and row.audio_seconds == pytest.approx(2.0)
    assert float(row.cost) == pytest.approx(2.0 * 0.0001)


def test_transcription_falls_back_to_the_second_deployment(llm: LLMSetup) -> None:
    llm.deployment("whisper", "error-500", mode="transcription")
    scribe = llm.deployment("scribe", mode="transcription")
    llm.fallback("whisper", "scribe")

    result = gateway.transcribe("whisper", wav_bytes(1.0), "clip.wav", context=DOCS)

    assert result.outcome.served_by is not None and result.outcome.served_by.id == scribe.pk
    assert result.outcome.fallbacks == ["scribe"]


def test_speech_costs_per_character(llm: LLMSetup) -> None:
    deployment = llm.deployment("voice", mode="speech", output_cost_per_character="0.000015")
    text = "Hello from the platform."

    result = gateway.speak("voice", text, context=DOCS, voice="nova", response_format="wav")

    assert result.audio[:4] == b"RIFF" and result.content_type == "audio/wav"
    assert llm.fake.requests_for("/audio/speech")[-1].json["voice"] == "nova"
    row = only_call(result.outcome.trace_id)
    assert row.deployment_id == deployment.pk and row.characters == len(text)
    assert float(row.cost) == pytest.approx(len(text) * 0.000015)


async def test_async_speech_and_transcription(llm: LLMSetup) -> None:
    await asyncio.to_thread(llm.deployment, "voice", mode="speech")
    await asyncio.to_thread(llm.deployment, "ears", mode="transcription")
    spoken = await gateway.aspeak("voice", "one two three", context=DOCS, response_format="wav")
    heard = await gateway.atranscribe("ears", spoken.audio, "spoken.wav", context=DOCS)
    assert heard.text == llm.fake.transcript and heard.duration


def test_calls_are_attributed_to_user_and_app(llm: LLMSetup, alice) -> None:
    llm.deployment("chatty")
    result = gateway.chat("chatty", [{"role": "user", "content": "hi"}], context=gateway.CallContext("api", alice.pk))
    row = only_call(result.outcome.trace_id)
    assert row.user_id == alice.pk and row.app == "api" and row.call_type == "chat"
    assert row.latency_ms is not None and row.latency_ms > 0
