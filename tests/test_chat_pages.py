"""The chat pages: conversations, sending (without JavaScript the answer comes whole), regenerate,
edit and resend, settings, search, rename, delete, export, and what each answer shows."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from chat.models import Conversation, Message
from providers.models import Deployment
from tests.chat_helpers import conversation_for
from tests.llm import LLMSetup

pytestmark = pytest.mark.slow


def test_new_chat_send_and_answer_with_what_served_it(alice_client: Client, alice, llm: LLMSetup) -> None:
    llm.deployment("gpt-test", input_cost_per_token="0.000001", output_cost_per_token="0.000002")
    page = alice_client.get("/chat/").content.decode()
    assert '<option value="gpt-test"' in page

    response = alice_client.post("/chat/new", {"model": "gpt-test"})
    conversation = Conversation.objects.get(owner=alice)
    assert response["Location"] == f"/chat/{conversation.pk}/"

    response = alice_client.post(f"/chat/{conversation.pk}/send", {"message": "Tell me something nice about otters"})
    assert response.status_code == 302
    user_message, answer = Message.objects.filter(conversation=conversation)
    assert (user_message.role, user_message.content) == ("user", "Tell me something nice about otters")
    assert (answer.role, answer.status, answer.content) == ("assistant", "complete", llm.fake.reply)
    assert answer.provider == llm.provider.name and answer.completion_tokens == 9
    conversation.refresh_from_db()
    assert conversation.title == "Tell me something nice about otters"

    page = alice_client.get(f"/chat/{conversation.pk}/").content.decode()
    assert "Served by <b>" + llm.provider.name in page
    assert "9 out tokens" in page and "$0.00002" in page and " ms" in page


def test_fallback_is_visible_on_the_page(alice_client: Client, alice, llm: LLMSetup) -> None:
    conversation = conversation_for(alice, llm, "primary", "error-500")
    llm.deployment("backup")
    llm.fallback("primary", "backup")
    alice_client.post(f"/chat/{conversation.pk}/send", {"message": "hello"})
    answer = Message.objects.get(conversation=conversation, role="assistant")
    assert answer.status == "complete" and answer.fallbacks == ["backup"] and answer.model_group == "backup"
    page = alice_client.get(f"/chat/{conversation.pk}/").content.decode()
    assert "fell back to backup" in page


def test_provider_failure_shows_inline_with_retry_and_keeps_the_message(
    alice_client: Client, alice, llm: LLMSetup
) -> None:
    conversation = conversation_for(alice, llm, "broken", "error-500")
    alice_client.post(f"/chat/{conversation.pk}/send", {"message": "are you there?"})
    user_message, answer = Message.objects.filter(conversation=conversation)
    assert user_message.content == "are you there?"
    assert answer.status == "failed" and "Every deployment" in answer.error
    page = alice_client.get(f"/chat/{conversation.pk}/").content.decode()
    assert "The answer failed" in page and ">Retry</button>" in page

    llm.fake.set_behaviour(llm.fake_model(Deployment.objects.get(model_group="broken")), "ok")
    alice_client.post(f"/chat/{conversation.pk}/regenerate")
    answers = list(Message.objects.filter(conversation=conversation, role="assistant"))
    assert len(answers) == 1 and answers[0].status == "complete"


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("", "empty message cannot be sent"),
        ("   \n ", "empty message cannot be sent"),
        ("x" * 40001, "the limit is 32,000"),
    ],
)
def test_bad_messages_are_refused_and_nothing_is_stored(
    alice_client: Client, alice, llm: LLMSetup, message: str, error: str
) -> None:
    conversation = conversation_for(alice, llm)
    response = alice_client.post(f"/chat/{conversation.pk}/send", {"message": message})
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not Message.objects.exists()
    assert llm.fake.requests == []


def test_unknown_and_disabled_models_are_refused(alice_client: Client, alice, llm: LLMSetup) -> None:
    conversation = conversation_for(alice, llm)
    response = alice_client.post("/chat/new", {"model": "no-such-model"})
    assert response.status_code == 400 and "no chat model called" in response.content.decode()

    deployment = llm.deployment("retired")
    deployment.enabled = False
    deployment.save()
    conversation.model_group = "retired"
    conversation.save()
    typed = "this text must survive the refusal"
    response = alice_client.post(f"/chat/{conversation.pk}/send", {"message": typed})
    page = response.content.decode()
    assert response.status_code == 400 and "disabled by an operator" in page
    assert typed in page, "the typed text is given back in the form"
    assert not Message.objects.exists()


def test_htmx_send_returns_the_turn_with_a_streaming_answer(alice_client: Client, alice, llm: LLMSetup) -> None:
    conversation = conversation_for(alice, llm)
    response = alice_client.post(f"/chat/{conversation.pk}/send", {"message": "hi"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    answer = Message.objects.get(role="assistant")
    assert answer.status == "streaming"
    assert f'data-stream-url="/chat/{conversation.pk}/messages/{answer.pk}/stream"' in html
    assert 'id="message-list"' in html and "<html" not in html
    assert llm.fake.requests == [], "no provider call until the stream is opened"

    refused = alice_client.post(f"/chat/{conversation.pk}/send", {"message": ""}, HTTP_HX_REQUEST="true")
    assert refused["HX-Retarget"] == "#chat-error" and "empty message" in refused.content.decode()


def test_regenerate_replaces_the_last_answer(alice_client: Client, alice, llm: LLMSetup) -> None:
    conversation = conversation_for(alice, llm)
    alice_client.post(f"/chat/{conversation.pk}/send", {"message": "first"})
    first = Message.objects.get(role="assistant")
    llm.fake.reply = "A different answer."
    alice_client.post(f"/chat/{conversation.pk}/regenerate")
    answers = list(Message.objects.filter(role="assistant"))
    assert len(answers) == 1 and answers[0].pk != first.pk and answers[0].content == "A different answer."


def test_edit_and_resend_truncates_what_followed(alice_client: Client, alice, llm: LLMSetup) -> None:
    conversation = conversation_for(alice, llm)
    for text in ("one", "two", "three"):
        alice_client.post(f"/chat/{conversation.pk}/send", {"message": text})
    second = Message.objects.get(content="two")
    alice_client.post(f"/chat/{conversation.pk}/messages/{second.pk}/edit", {"message": "two, edited"})
    contents = [(m.role, m.content) for m in conversation.messages.all()]
    assert contents == [
        ("user", "one"),
        ("assistant", llm.fake.reply),
        ("user", "two, edited"),
        ("assistant", llm.fake.reply),
    ]
    sent = llm.fake.requests_for("/chat/completions")[-1].json["messages"]
    assert [m["content"] for m in sent] == ["one", llm.fake.reply, "two, edited"]


def test_system_prompt_and_temperature_reach_the_provider(alice_client: Client, alice, llm: LLMSetup) -> None:
    conversation = conversation_for(alice, llm)
    response = alice_client.post(
        f"/chat/{conversation.pk}/settings",
        {"model": "gpt-test", "system_prompt": "You are terse.", "temperature": "0.3"},
    )
    assert response.status_code == 302
    alice_client.post(f"/chat/{conversation.pk}/send", {"message": "hello"})
    body = llm.fake.requests_for("/chat/completions")[-1].json
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert body["temperature"] == 0.3
    bad = alice_client.post(f"/chat/{conversation.pk}/settings", {"model": "gpt-test", "temperature": "9"})
    assert bad.status_code == 400 and "0 to 2" in bad.content.decode()


def test_long_history_leaves_out_the_oldest_turns_and_says_so(alice_client: Client, alice, llm: LLMSetup) -> None:
    llm.deployment("tiny", context_window=120, max_output_tokens=20)
    conversation = Conversation.objects.create(owner=alice, model_group="tiny", system_prompt="Always be kind.")
    for index in range(8):
        alice_client.post(f"/chat/{conversation.pk}/send", {"message": f"message number {index} " + "word " * 20})
    sent = llm.fake.requests_for("/chat/completions")[-1].json["messages"]
    assert sent[0] == {"role": "system", "content": "Always be kind."}
    assert sent[-1]["content"].startswith("message number 7")
    assert not any(m["content"].startswith("message number 0") for m in sent)
    last = conversation.messages.filter(role="assistant").last()
    assert last is not None and last.context_dropped > 0
    page = alice_client.get(f"/chat/{conversation.pk}/").content.decode()
    assert f"{last.context_dropped} earlier messages left out to fit the model" in page


def test_sidebar_lists_newest_first_and_searches_titles_and_text(alice_client: Client, alice, llm: LLMSetup) -> None:
    llm.deployment("gpt-test")
    older = Conversation.objects.create(owner=alice, model_group="gpt-test", title="Otter facts")
    newer = Conversation.objects.create(owner=alice, model_group="gpt-test", title="Budget planning")
    Message.objects.create(conversation=older, role="user", content="Where do sea otters sleep?")
    newer.save()  # touched last
    page = alice_client.get("/chat/").content.decode()
    assert page.index("Budget planning") < page.index("Otter facts")
    found = alice_client.get("/chat/?q=sleep", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="conversation-list")
    html = found.content.decode()
    assert "Otter facts" in html and "Budget planning" not in html and "<html" not in html
    assert "Budget planning" in alice_client.get("/chat/?q=budget").content.decode()


def test_rename_delete_and_export(alice_client: Client, alice, llm: LLMSetup) -> None:
    conversation = conversation_for(alice, llm)
    alice_client.post(f"/chat/{conversation.pk}/send", {"message": "hi **there**"})
    alice_client.post(f"/chat/{conversation.pk}/rename", {"title": "  Renamed   chat "})
    conversation.refresh_from_db()
    assert conversation.title == "Renamed chat"

    markdown = alice_client.get(f"/chat/{conversation.pk}/export.md")
    assert markdown["Content-Disposition"] == 'attachment; filename="renamed-chat.md"'
    text = markdown.content.decode()
    assert text.startswith("# Renamed chat") and "hi **there**" in text and llm.fake.reply in text
    exported = json.loads(alice_client.get(f"/chat/{conversation.pk}/export.json").content)
    assert [m["role"] for m in exported["messages"]] == ["user", "assistant"]
    assert exported["messages"][1]["provider"] == llm.provider.name

    alice_client.post(f"/chat/{conversation.pk}/delete")
    assert not Conversation.objects.exists() and not Message.objects.exists()
