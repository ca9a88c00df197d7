"""The OpenAI-compatible endpoints, driven by the official `openai` package against the app under
uvicorn, with the fake provider behind the gateway."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import openai
import pytest

from analytics.models import Budget, LLMCall
from assistant_project.accounts.models import ApiKey
from tests.conftest import AsgiServer
from tests.fake_provider import wav_bytes
from tests.llm import LLMSetup

pytestmark = pytest.mark.slow


@pytest.fixture
def client(llm: LLMSetup, alice, asgi_server: AsgiServer) -> openai.OpenAI:
    llm.deployment("gpt-test", input_cost_per_token="0.000001", output_cost_per_token="0.000002")
    llm.deployment("slowpoke", "slow")
    llm.deployment("vectors", mode="embedding")
    llm.deployment("ears", mode="transcription")
    llm.deployment("voice", mode="speech")
    llm.deployment("ranker", mode="rerank")
    llm.deployment("down", "error-500")
    _, key = ApiKey.issue(alice, "sdk")
    return openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=key, max_retries=0, timeout=30)


def test_models_lists_the_groups(client: openai.OpenAI) -> None:
    names = {model.id for model in client.models.list()}
    assert {"gpt-test", "vectors", "ears", "voice", "ranker"} <= names


def test_chat_completion_is_recorded_with_the_api_app(client: openai.OpenAI, llm: LLMSetup, alice) -> None:
    completion = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi there"}])
    assert completion.choices[0].message.content == llm.fake.reply
    assert completion.model == "gpt-test" and completion.usage is not None and completion.usage.completion_tokens == 9
    row = LLMCall.objects.filter(model_group="gpt-test").last()
    assert row is not None and (row.app, row.user_id) == ("api", alice.pk) and row.cost > 0


def test_streamed_chat_arrives_incrementally_with_usage_at_the_end(client: openai.OpenAI, llm: LLMSetup) -> None:
    llm.fake.slow_delay = 0.2
    stream = client.chat.completions.create(
        model="slowpoke",
        messages=[{"role": "user", "content": "tell me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    arrivals: list[float] = []
    text, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
            arrivals.append(time.monotonic())
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(text) == llm.fake.reply
    assert arrivals[-1] - arrivals[0] > 1.0, "chunks came while the provider was writing"
    assert usage is not None and usage.completion_tokens == 9 and usage.prompt_tokens > 0


def test_tools_and_json_format_are_passed_to_the_provider(client: openai.OpenAI, llm: LLMSetup) -> None:
    tools: Any = [
        {"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}
    ]
    client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "weather?"}],
        tools=tools,
        tool_choice="auto",
        response_format={"type": "json_object"},
    )
    sent = llm.fake.requests_for("/chat/completions")[-1].json
    assert sent["tools"][0]["function"]["name"] == "weather" and sent["response_format"] == {"type": "json_object"}


def test_embeddings_transcription_speech_and_rerank(client: openai.OpenAI, llm: LLMSetup, tmp_path) -> None:
    vectors = client.embeddings.create(model="vectors", input=["a cat", "a dog"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 384
    audio = tmp_path / "clip.wav"
    audio.write_bytes(wav_bytes(1.0))
    with audio.open("rb") as handle:
        transcript = client.audio.transcriptions.create(model="ears", file=handle)
    assert transcript.text == llm.fake.transcript
    spoken = client.audio.speech.create(model="voice", voice="alloy", input="Hello there", response_format="wav")
    assert spoken.content[:4] == b"RIFF"
    ranked = client.post(
        "/rerank",
        body={
            "model": "ranker",
            "query": "capital of france",
            "documents": ["bananas", "paris is the capital of france"],
        },
        cast_to=object,
    )
    assert ranked["results"][0]["index"] == 1  # type: ignore[index]


def test_errors_have_the_openai_shape_and_status(client: openai.OpenAI, llm: LLMSetup, alice, asgi_server) -> None:
    wrong = openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key="aap_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as unauthorized:
        wrong.models.list()
    assert unauthorized.value.status_code == 401 and unauthorized.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.code == "model_not_found"
    sent = len(llm.fake.requests)
    with pytest.raises(openai.BadRequestError) as forbidden:
        client.chat.completions.create(
            model="gpt-test",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"api_base": "http://evil.example"},
        )
    assert forbidden.value.code == "forbidden_parameter" and "api_base" in forbidden.value.message
    assert len(llm.fake.requests) == sent, "nothing was forwarded"
    with pytest.raises(openai.InternalServerError) as down:
        client.chat.completions.create(model="down", messages=[{"role": "user", "content": "hi"}])
    assert down.value.status_code == 503
    Budget.objects.create(user=alice, period="day", limit_usd=Decimal("0"))
    with pytest.raises(openai.RateLimitError) as broke:
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert broke.value.status_code == 429 and broke.value.code == "insufficient_quota"
    assert len(llm.fake.requests) == sent + 2, "the over-budget call never reached the provider"
