"""The chat API's client contract, its errors, and isolation: another user's conversation answers 404
on every route, pages and API alike."""

from __future__ import annotations

import pytest
from django.test import Client

from assistant_project.accounts.models import ApiKey
from chat.models import Conversation, Message
from tests.chat_helpers import conversation_for
from tests.llm import LLMSetup

pytestmark = pytest.mark.slow


def api_client(user) -> Client:
    _, raw = ApiKey.issue(user, "test")
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


def test_create_send_list_and_delete(alice, llm: LLMSetup) -> None:
    llm.deployment("gpt-test", input_cost_per_token="0.000001", output_cost_per_token="0.000002")
    client = api_client(alice)

    created = client.post(
        "/api/v1/chat/conversations",
        {"model": "gpt-test", "system_prompt": "Be brief."},
        content_type="application/json",
    )
    assert created.status_code == 201
    conversation_id = created.json()["conversation_id"]

    answer = client.post(
        f"/api/v1/chat/conversations/{conversation_id}/messages", {"message": "hi"}, content_type="application/json"
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["response"] == llm.fake.reply and body["model_used"] == "gpt-test"
    assert body["provider"] == llm.provider.name and body["fallbacks"] == []
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}
    assert body["cost"] == pytest.approx(3 * 0.000001 + 9 * 0.000002)
    assert body["latency_ms"] > 0 and isinstance(body["message_id"], int)

    listed = client.get("/api/v1/chat/conversations").json()["conversations"]
    assert [item["conversation_id"] for item in listed] == [conversation_id]
    history = client.get(f"/api/v1/chat/conversations/{conversation_id}/messages").json()["messages"]
    assert [(m["role"], m["content"]) for m in history] == [("user", "hi"), ("assistant", llm.fake.reply)]

    assert client.delete(f"/api/v1/chat/conversations/{conversation_id}").status_code == 204
    assert not Conversation.objects.exists()


def test_fallback_is_reported_by_the_api(alice, llm: LLMSetup) -> None:
    conversation = conversation_for(alice, llm, "primary", "error-500")
    llm.deployment("backup")
    llm.fallback("primary", "backup")
    body = (
        api_client(alice)
        .post(
            f"/api/v1/chat/conversations/{conversation.pk}/messages", {"message": "hi"}, content_type="application/json"
        )
        .json()
    )
    assert body["fallbacks"] == ["backup"] and body["model_used"] == "backup" and body["attempts"] >= 2


def test_bad_input_answers_400_with_the_error_shape_and_stores_nothing(alice, llm: LLMSetup) -> None:
    client = api_client(alice)
    conversation = conversation_for(alice, llm)
    url = f"/api/v1/chat/conversations/{conversation.pk}/messages"
    for payload, words in (
        ({"message": ""}, "empty message"),
        ({"message": "x" * 32001}, "the limit is 32,000"),
        ({}, "required"),
    ):
        response = client.post(url, payload, content_type="application/json")
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "invalid_request"
        assert words in response.json()["error"]["message"]
    unknown = client.post("/api/v1/chat/conversations", {"model": "nope"}, content_type="application/json")
    assert unknown.status_code == 400 and "no chat model called 'nope'" in unknown.json()["error"]["message"]
    assert not Message.objects.exists()
    assert Conversation.objects.count() == 1


def test_provider_failure_is_502_and_keeps_the_users_message(alice, llm: LLMSetup) -> None:
    conversation = conversation_for(alice, llm, "broken", "error-500")
    response = api_client(alice).post(
        f"/api/v1/chat/conversations/{conversation.pk}/messages",
        {"message": "keep me"},
        content_type="application/json",
    )
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "provider_error"
    assert Message.objects.filter(role="user", content="keep me").exists()
    assert Message.objects.get(role="assistant").status == "failed"


def test_every_chat_route_is_a_404_for_another_user(alice, bob, bob_client: Client, llm: LLMSetup) -> None:
    conversation = conversation_for(alice, llm)
    alice_api = api_client(alice)
    alice_api.post(
        f"/api/v1/chat/conversations/{conversation.pk}/messages", {"message": "secret"}, content_type="application/json"
    )
    user_message = Message.objects.get(role="user")
    answer = Message.objects.get(role="assistant")
    cid = conversation.pk
    page_routes = [
        ("get", f"/chat/{cid}/"),
        ("post", f"/chat/{cid}/send"),
        ("post", f"/chat/{cid}/regenerate"),
        ("post", f"/chat/{cid}/rename"),
        ("post", f"/chat/{cid}/delete"),
        ("post", f"/chat/{cid}/settings"),
        ("get", f"/chat/{cid}/export.md"),
        ("get", f"/chat/{cid}/export.json"),
        ("post", f"/chat/{cid}/messages/{user_message.pk}/edit"),
        ("post", f"/chat/{cid}/messages/{answer.pk}/stop"),
        ("get", f"/chat/{cid}/messages/{answer.pk}/stream"),
    ]
    for method, url in page_routes:
        response = getattr(bob_client, method)(url, {"message": "x", "title": "x", "model": "gpt-test"})
        assert response.status_code == 404, (method, url)
    bob_api = api_client(bob)
    api_routes = [
        ("get", f"/api/v1/chat/conversations/{cid}"),
        ("delete", f"/api/v1/chat/conversations/{cid}"),
        ("get", f"/api/v1/chat/conversations/{cid}/messages"),
        ("post", f"/api/v1/chat/conversations/{cid}/messages"),
        ("post", f"/api/v1/chat/conversations/{cid}/messages/stream"),
    ]
    for method, url in api_routes:
        response = getattr(bob_api, method)(url, {"message": "x"}, content_type="application/json")
        assert response.status_code == 404, (method, url)
        assert response.json()["error"]["type"] == "not_found"
    assert bob_api.get("/api/v1/chat/conversations").json() == {"conversations": []}
    assert "No chat matches “secret”" in bob_client.get("/chat/?q=secret").content.decode()
    # Nothing of alice's changed.
    conversation.refresh_from_db()
    assert conversation.title == "secret" and Message.objects.count() == 2
