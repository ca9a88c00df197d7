"""Streaming is real: the app runs under uvicorn and an async HTTP client reads its Server-Sent Events
while the fake provider is still writing. Stop, client disconnects and broken streams keep the text."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from analytics.models import LLMCall
from assistant_project.accounts.models import ApiKey
from chat.models import Conversation, Message
from tests.conftest import AsgiServer
from tests.factories import PASSWORD
from tests.llm import LLMSetup

pytestmark = pytest.mark.slow


async def logged_in(server: AsgiServer, username: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=server.url, timeout=30)
    await client.get("/accounts/login/")
    response = await client.post(
        "/accounts/login/",
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": client.cookies["csrftoken"]},
    )
    assert response.status_code == 302, response.text
    return client


async def send(client: httpx.AsyncClient, conversation: Conversation, text: str) -> tuple[str, str]:
    response = await client.post(
        f"/chat/{conversation.pk}/send",
        data={"message": text},
        headers={"HX-Request": "true", "X-CSRFToken": client.cookies["csrftoken"]},
    )
    assert response.status_code == 200, response.text
    stream_url = re.findall(r'data-stream-url="([^"]+)"', response.text)[-1]
    stop_url = re.findall(r'data-stop-url="([^"]+)"', response.text)[-1]
    return stream_url, stop_url


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, Any, float]]:
    event = "message"
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, json.loads(line[6:]), time.monotonic()
            event = "message"


def db(function: Any) -> Any:
    return asyncio.to_thread(function)


async def test_tokens_arrive_while_the_provider_is_still_writing(llm: LLMSetup, alice, asgi_server: AsgiServer) -> None:
    llm.fake.slow_delay = 0.25
    await db(lambda: llm.deployment("slowpoke", "slow"))
    conversation = await db(lambda: Conversation.objects.create(owner=alice, model_group="slowpoke"))
    client = await logged_in(asgi_server, "alice")
    stream_url, _ = await send(client, conversation, "tell me a story")

    tokens: list[tuple[str, float]] = []
    done: dict[str, Any] = {}
    async with client.stream("GET", stream_url) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for event, data, at in sse_events(response):
            if event == "token":
                tokens.append((data["text"], at))
            elif event == "done":
                done = data
                break
    await client.aclose()

    pieces = len(llm.fake.reply.split())
    assert "".join(text for text, _ in tokens) == llm.fake.reply
    assert len(tokens) == pieces
    # The provider takes about pieces x 0.25 s; the first token must come long before it is done.
    upstream = llm.fake.requests_for("/chat/completions")[-1]
    assert upstream.finished_at is not None
    first, last = tokens[0][1], tokens[-1][1]
    assert first < upstream.finished_at - 1.0, (first, upstream.finished_at)
    assert last - first > 0.25 * (pieces - 2), "tokens came in steps, not in one buffered block"
    assert done["status"] == "complete" and "Served by" in done["html"]
    answer = await Message.objects.aget(role="assistant")
    assert answer.status == "complete" and answer.content == llm.fake.reply and answer.ttft_ms


async def test_stop_keeps_the_partial_text_marked_stopped(llm: LLMSetup, alice, asgi_server: AsgiServer) -> None:
    llm.fake.slow_delay = 0.3
    await db(lambda: llm.deployment("slowpoke", "slow"))
    conversation = await db(lambda: Conversation.objects.create(owner=alice, model_group="slowpoke"))
    client = await logged_in(asgi_server, "alice")
    stream_url, stop_url = await send(client, conversation, "go")

    received: list[str] = []
    final: dict[str, Any] = {}
    async with client.stream("GET", stream_url) as response:
        async for event, data, _ in sse_events(response):
            if event == "token":
                received.append(data["text"])
                if len(received) == 2:
                    stop = await client.post(stop_url, headers={"X-CSRFToken": client.cookies["csrftoken"]})
                    assert stop.status_code == 204
            elif event == "done":
                final = data
                break
    await client.aclose()

    assert final["status"] == "stopped"
    answer = await Message.objects.aget(role="assistant")
    assert answer.status == "stopped"
    assert answer.content == "".join(received) and 2 <= len(received) < len(llm.fake.reply.split())
    assert "Stopped; the partial answer is kept." in final["html"]
    abandoned = await LLMCall.objects.filter(model_group="slowpoke").alast()
    assert abandoned is not None and abandoned.status == "abandoned"


async def test_a_client_that_goes_away_leaves_the_answer_interrupted_not_streaming(
    llm: LLMSetup, alice, asgi_server: AsgiServer
) -> None:
    await db(lambda: llm.deployment("slowpoke", "slow"))
    conversation = await db(lambda: Conversation.objects.create(owner=alice, model_group="slowpoke"))
    client = await logged_in(asgi_server, "alice")
    stream_url, _ = await send(client, conversation, "go")
    received: list[str] = []
    async with client.stream("GET", stream_url) as response:
        async for event, data, _ in sse_events(response):
            if event == "token":
                received.append(data["text"])
                if len(received) == 2:
                    break
    await client.aclose()

    deadline = time.monotonic() + 10
    answer = await Message.objects.aget(role="assistant")
    while answer.status == "streaming" and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        answer = await Message.objects.aget(role="assistant")
    assert answer.status == "interrupted"
    assert answer.content.startswith("".join(received))


async def test_a_stream_that_dies_gives_an_error_event_and_keeps_the_text(
    llm: LLMSetup, alice, asgi_server: AsgiServer
) -> None:
    await db(lambda: llm.deployment("fragile", "stream-dies"))
    conversation = await db(lambda: Conversation.objects.create(owner=alice, model_group="fragile"))
    client = await logged_in(asgi_server, "alice")
    stream_url, _ = await send(client, conversation, "go")
    kinds: list[str] = []
    final: dict[str, Any] = {}
    async with client.stream("GET", stream_url) as response:
        async for event, data, _ in sse_events(response):
            kinds.append(event)
            if event == "done":
                final = data
                break
    await client.aclose()

    assert "token" in kinds and "error" in kinds and kinds[-1] == "done"
    answer = await Message.objects.aget(role="assistant")
    assert answer.status == "failed" and answer.content and llm.fake.reply.startswith(answer.content)
    assert "broke off" in answer.error and "Retry" in final["html"]


async def test_api_stream_sends_token_events_then_the_metadata(llm: LLMSetup, alice, asgi_server: AsgiServer) -> None:
    llm.fake.slow_delay = 0.2
    await db(lambda: llm.deployment("slowpoke", "slow", output_cost_per_token="0.00001"))
    conversation = await db(lambda: Conversation.objects.create(owner=alice, model_group="slowpoke"))
    _, raw_key = await db(lambda: ApiKey.issue(alice, "test"))
    headers = {"Authorization": f"Bearer {raw_key}"}
    url = f"/api/v1/chat/conversations/{conversation.pk}/messages/stream"
    async with httpx.AsyncClient(base_url=asgi_server.url, timeout=30) as client:
        times: list[float] = []
        tokens: list[str] = []
        done: dict[str, Any] = {}
        async with client.stream("POST", url, json={"message": "hi"}, headers=headers) as response:
            assert response.status_code == 200
            async for event, data, at in sse_events(response):
                if event == "token":
                    tokens.append(data["token"])
                    times.append(at)
                elif event == "done":
                    done = data
        assert "".join(tokens) == llm.fake.reply and times[-1] - times[0] > 1.0
        assert done["response"] == llm.fake.reply and done["model_used"] == "slowpoke"
        assert done["usage"]["completion_tokens"] == 9 and done["cost"] == pytest.approx(9 * 0.00001)
        assert done["provider"] == llm.provider.name and done["fallbacks"] == []

        unauthenticated = await client.post(url, json={"message": "hi"})
        assert unauthenticated.status_code == 401 and unauthenticated.json()["error"]["type"] == "authentication_error"
        empty = await client.post(url, json={"message": ""}, headers=headers)
        assert empty.status_code == 400 and "empty message" in empty.json()["error"]["message"]


async def test_another_users_stream_is_a_404(llm: LLMSetup, alice, bob, asgi_server: AsgiServer) -> None:
    await db(lambda: llm.deployment("gpt-test"))
    conversation = await db(lambda: Conversation.objects.create(owner=alice, model_group="gpt-test"))
    alice_client = await logged_in(asgi_server, "alice")
    stream_url, stop_url = await send(alice_client, conversation, "mine")
    bob_client = await logged_in(asgi_server, "bob")
    assert (await bob_client.get(stream_url)).status_code == 404
    stop = await bob_client.post(stop_url, headers={"X-CSRFToken": bob_client.cookies["csrftoken"]})
    assert stop.status_code == 404
    _, bob_key = await db(lambda: ApiKey.issue(bob, "bob"))
    api = await bob_client.post(
        f"/api/v1/chat/conversations/{conversation.pk}/messages/stream",
        json={"message": "x"},
        headers={"Authorization": f"Bearer {bob_key}"},
    )
    assert api.status_code == 404
    await alice_client.aclose()
    await bob_client.aclose()
    assert llm.fake.requests == []
