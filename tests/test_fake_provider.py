"""The fake provider speaks what LiteLLM expects, and fails the ways the model name asks for."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx
import pytest

from tests.fake_provider import FakeProvider, embed_text, wav_bytes


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def chat(provider: FakeProvider, model: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{provider.api_base}/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi there"}], **extra},
        timeout=10,
    )


def test_chat_non_streamed(provider: FakeProvider) -> None:
    body = chat(provider, "gpt-test").json()
    assert body["choices"][0]["message"]["content"] == provider.reply
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 9, "total_tokens": 11}
    recorded = provider.requests_for("/chat/completions", model="gpt-test")
    assert len(recorded) == 1
    assert recorded[0].json["messages"][0]["content"] == "hi there"


def test_chat_streamed_with_usage(provider: FakeProvider) -> None:
    events = []
    with httpx.stream(
        "POST",
        f"{provider.api_base}/chat/completions",
        json={
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        timeout=10,
    ) as response:
        assert response.headers["content-type"] == "text/event-stream"
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == provider.reply
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 9


def test_slow_stream_spaces_tokens(provider: FakeProvider) -> None:
    provider.slow_delay = 0.05
    arrivals = []
    started = time.monotonic()
    with httpx.stream(
        "POST",
        f"{provider.api_base}/chat/completions",
        json={"model": "slow-model", "messages": [], "stream": True},
        timeout=10,
    ) as response:
        for line in response.iter_lines():
            if '"content": "' in line and '"content": ""' not in line:
                arrivals.append(time.monotonic() - started)
    provider.slow_delay = 0.3
    assert len(arrivals) == 9
    assert arrivals[-1] - arrivals[0] >= 0.05 * 7


def test_stream_dies_midway(provider: FakeProvider) -> None:
    with httpx.stream(
        "POST",
        f"{provider.api_base}/chat/completions",
        json={"model": "stream-dies", "messages": [], "stream": True},
        timeout=10,
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert "data: [DONE]" not in lines
    assert 1 < len(lines) < 6


@pytest.mark.parametrize(
    ("model", "status", "fragment"),
    [
        ("error-500", 500, "internal error"),
        ("rate-limit", 429, "Rate limit"),
        ("auth-error", 401, "Incorrect API key"),
        ("context-length", 400, "maximum context length"),
        ("content-policy", 400, "rejected as a result of the safety system"),
    ],
)
def test_failures_by_model_name(provider: FakeProvider, model: str, status: int, fragment: str) -> None:
    response = chat(provider, f"x-{model}-y")
    assert response.status_code == status
    assert fragment in response.json()["error"]["message"]
    assert "retry-after" not in response.headers


def test_rate_limit_with_retry_after(provider: FakeProvider) -> None:
    response = chat(provider, "rate-limit-retry")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"


def test_timeout_hangs(provider: FakeProvider) -> None:
    provider.hang_seconds = 2
    try:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{provider.api_base}/chat/completions", json={"model": "timeout-model", "messages": []}, timeout=0.5
            )
    finally:
        provider.hang_seconds = 30


def test_behaviour_override_at_run_time(provider: FakeProvider) -> None:
    assert chat(provider, "healthy").status_code == 200
    provider.set_behaviour("healthy", "error-500")
    assert chat(provider, "healthy").status_code == 500
    provider.set_behaviour("healthy", None)
    assert chat(provider, "healthy").status_code == 200


def test_embeddings_are_deterministic_and_similar_texts_are_near(provider: FakeProvider) -> None:
    texts = ["the cat sat on the mat", "the cat sat on a mat", "quarterly tax returns are due"]
    body = httpx.post(f"{provider.api_base}/embeddings", json={"model": "e", "input": texts}, timeout=10).json()
    vectors = [item["embedding"] for item in body["data"]]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert vectors[0] == embed_text(texts[0])
    assert cosine(vectors[0], vectors[1]) > 0.6
    assert abs(cosine(vectors[0], vectors[2])) < 0.2
    assert body["usage"]["prompt_tokens"] == 17


@pytest.mark.parametrize("path", ["/v2/rerank", "/rerank", "/v1/rerank"])
def test_rerank_shapes(provider: FakeProvider, path: str) -> None:
    body = httpx.post(
        f"{provider.url}{path}",
        json={"model": "r", "query": "cat mat", "documents": ["dogs bark", "the cat on the mat"], "top_n": 2},
        timeout=10,
    ).json()
    assert [item["index"] for item in body["results"]] == [1, 0]
    assert body["results"][0]["relevance_score"] == 1.0
    assert body["meta"]["billed_units"]["search_units"] == 1


def test_transcription_and_speech(provider: FakeProvider) -> None:
    audio = wav_bytes(1.5)
    body = httpx.post(
        f"{provider.api_base}/audio/transcriptions",
        data={"model": "whisper", "response_format": "verbose_json"},
        files={"file": ("a.wav", audio, "audio/wav")},
        timeout=10,
    ).json()
    assert body["text"] == provider.transcript
    assert body["duration"] == pytest.approx(1.5)
    assert body["segments"][0]["end"] == pytest.approx(1.5)
    speech = httpx.post(f"{provider.api_base}/audio/speech", json={"model": "tts", "input": "hello", "voice": "a"})
    assert speech.headers["content-type"] == "audio/wav"
    assert speech.content.startswith(b"RIFF")


@pytest.mark.slow
def test_litellm_speaks_with_the_fake(provider: FakeProvider) -> None:
    """LiteLLM itself (not our code) gets sensible answers from the fake, for each call type."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    base = {"api_base": provider.api_base, "api_key": "sk-fake"}
    reply = litellm.completion(model="openai/m", messages=[{"role": "user", "content": "hi"}], **base)
    assert reply.choices[0].message.content == provider.reply
    stream = litellm.completion(
        model="openai/m",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
        **base,
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == provider.reply
    vectors = litellm.embedding(model="openai/e", input=["a b", "c"], api_base=provider.api_base, api_key="sk-fake")
    assert len(vectors.data) == 2
    assert len(vectors.data[0]["embedding"]) == 384
    ranked = litellm.rerank(
        model="cohere/rerank", query="cat", documents=["dog", "cat"], top_n=1, api_base=provider.url, api_key="k"
    )
    assert ranked.results[0]["index"] == 1
    text = litellm.transcription(model="openai/whisper", file=("a.wav", wav_bytes(1.0)), **base)
    assert text.text == provider.transcript
    speech = litellm.speech(model="openai/tts", input="hello", voice="alloy", **base)
    assert speech.content.startswith(b"RIFF")
