"""Every URL pattern that names an object, walked from the URL configuration itself (so a new route
cannot be left out): another user asking for it gets 404 on every method, and never the owner's data.
The owner asking for the same URLs is the control that shows the ids are real."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from assistant_project.accounts.models import ApiKey
from audio.models import SpeechClip, Transcription, TranscriptionStatus
from chat.models import Conversation, Message, MessageRole, MessageStatus
from documents.models import Collection, Document, DocumentStatus

SECRET = "bob-private-7f3a"  # in every one of bob's objects, so a leak shows in any response body
# Patterns with ids that are not user objects: the admin (staff only, its own permission checks).
NOT_USER_OBJECTS = ("admin/",)
FORMATS = {"chat:export": "md", "audio:download": "srt"}


def walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[tuple[str, str, URLPattern]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from walk(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), f"{namespace}{entry.name}", entry


def object_routes() -> list[tuple[str, str]]:
    routes = []
    for route, name, pattern in walk(get_resolver().url_patterns):
        if route.startswith(NOT_USER_OBJECTS):
            continue
        if pattern.pattern.converters:
            routes.append((route, name))
    return routes


@pytest.fixture
def bobs_objects(bob: Any) -> dict[str, int]:
    conversation = Conversation.objects.create(owner=bob, model_group="m", title=SECRET)
    Message.objects.create(conversation=conversation, role=MessageRole.USER, content=SECRET)
    answer = Message.objects.create(
        conversation=conversation, role=MessageRole.ASSISTANT, content=SECRET, status=MessageStatus.COMPLETE
    )
    collection = Collection.objects.create(owner=bob, name=SECRET)
    document = Document.objects.create(
        collection=collection,
        original_name=f"{SECRET}.txt",
        kind="txt",
        size=len(SECRET),
        sha256="b" * 64,
        file=ContentFile(SECRET.encode(), name="bob.txt"),
        status=DocumentStatus.READY,
    )
    transcription = Transcription.objects.create(
        owner=bob,
        audio=ContentFile(b"RIFF" + SECRET.encode(), name="bob.wav"),
        original_name=f"{SECRET}.wav",
        status=TranscriptionStatus.READY,
        text=SECRET,
        segments=[{"start": 0.0, "end": 1.0, "text": SECRET}],
    )
    clip = SpeechClip.objects.create(
        owner=bob, text=SECRET, voice="v", format="wav", content_type="audio/wav", audio=ContentFile(b"RIFF", "c.wav")
    )
    key, _ = ApiKey.issue(bob, SECRET)
    return {
        "conversation_id": conversation.pk,
        "message_id": answer.pk,
        "collection_id": collection.pk,
        "document_id": document.pk,
        "transcription_id": transcription.pk,
        "clip_id": clip.pk,
        "key_id": key.pk,
    }


def url_for(route: str, name: str, ids: dict[str, int]) -> str:
    from django.urls import reverse

    pattern = next(p for r, n, p in walk(get_resolver().url_patterns) if r == route)
    kwargs: dict[str, Any] = {}
    for kwarg in pattern.pattern.converters:
        if kwarg == "fmt":
            kwargs[kwarg] = FORMATS[name]
        else:
            assert kwarg in ids, f"{route}: make one of bob's objects for <{kwarg}> in this test"
            kwargs[kwarg] = ids[kwarg]
    return reverse(name, kwargs=kwargs)


def test_the_walk_finds_every_kind_of_object_route() -> None:
    names = {name for _, name in object_routes()}
    assert {"chat:detail", "chat:stream", "documents:delete", "audio:clip", "revoke_api_key"} <= names
    assert {"api-chat-conversation", "api-document", "api-audio-transcription", "api-chat-stream"} <= names
    assert len(names) >= 28


@pytest.mark.django_db(transaction=True)
def test_another_user_gets_404_on_every_object_route(
    alice: Any, bob: Any, bobs_objects: dict[str, int], alice_client: Client
) -> None:
    _, alice_key = ApiKey.issue(alice, "alice")
    leaks: list[str] = []
    wrong: list[str] = []
    for route, name in object_routes():
        url = url_for(route, name, bobs_objects)
        statuses = []
        for method in ("get", "post", "delete"):
            if url.startswith(("/api/", "/v1/")):
                response = getattr(Client(), method)(url, HTTP_AUTHORIZATION=f"Bearer {alice_key}")
            else:
                response = getattr(alice_client, method)(url)
            body = b"".join(response.streaming_content) if response.streaming else response.content
            if SECRET.encode() in body:
                leaks.append(f"{method.upper()} {url}")
            statuses.append(response.status_code)
        # 405 for a method the route does not take; the ones it takes must all be 404.
        if not all(code in (404, 405) for code in statuses) or 404 not in statuses:
            wrong.append(f"{url}: GET/POST/DELETE gave {statuses}")
    assert leaks == []
    assert wrong == []
    assert Conversation.objects.filter(owner=bob, title=SECRET).exists()  # nothing was deleted
    assert Document.objects.filter(collection__owner=bob).count() == 1
    assert ApiKey.objects.get(pk=bobs_objects["key_id"]).revoked_at is None


def test_the_owner_reaches_the_same_urls(bob: Any, bobs_objects: dict[str, int], bob_client: Client) -> None:
    """The control: bob's own GETs find his objects, so the 404s above come from the ownership check."""
    _, bob_key = ApiKey.issue(bob, "bob")
    found = []
    for route, name in object_routes():
        if name in ("chat:stream", "api-chat-stream"):
            continue  # a stream of a finished answer; covered by the chat tests
        url = url_for(route, name, bobs_objects)
        if url.startswith(("/api/", "/v1/")):
            response = Client().get(url, HTTP_AUTHORIZATION=f"Bearer {bob_key}")
        else:
            response = bob_client.get(url)
        if response.status_code == 200:
            found.append(name)
    assert {"chat:detail", "chat:export", "documents:detail", "audio:transcription", "audio:clip"} <= set(found)
    assert {"api-chat-conversation", "api-document", "api-audio-transcription"} <= set(found)
