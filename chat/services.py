"""Turns of a conversation: the flow from a typed message to a saved answer, shared by the pages and
the API. The user's message is saved before any provider call; the answer is an assistant message
that starts as ``streaming`` and ends complete, stopped, failed or interrupted, always with what
the provider sent so far."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from providers import gateway
from providers.models import Deployment, DeploymentMode

from .models import Conversation, Message, MessageRole, MessageStatus

FIRST = asyncio.FIRST_COMPLETED
STOP_KEY = "chat:stop:{}"
STREAMING_KEY = "chat:streaming:{}"
SAVE_EVERY = 1.0  # seconds between saves of a streaming answer's partial text
# While the provider is silent (thinking before its first token) the stream still touches the answer
# this often, so that one untouched for CHAT_STREAM_STALE_SECONDS is known to have lost its process.
HEARTBEAT_SECONDS = 5.0
STOP_POLL = 0.2  # seconds between looks for a Stop request


def _close_connection() -> None:
    from django.db import connection

    connection.close()


async def release_db() -> None:
    """Give this request's database connection back while a stream waits on the provider: an
    open stream would otherwise hold one for its whole length (Postgres runs out at scale)."""
    await sync_to_async(_close_connection)()


class ChatInputError(Exception):
    """Input the platform refuses before storing anything; the message says why."""


def check_text(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ChatInputError("Type a message first: an empty message cannot be sent.")
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise ChatInputError(
            f"The message is {len(text):,} characters long; the limit is {settings.CHAT_MAX_MESSAGE_CHARS:,}."
        )
    return text.strip()


def chat_groups() -> list[str]:
    return Deployment.objects.group_names(DeploymentMode.CHAT)


def check_model(group: Any) -> str:
    if not isinstance(group, str) or not group:
        raise ChatInputError("Choose a model.")
    if group not in chat_groups():
        if Deployment.objects.filter(model_group=group, mode=DeploymentMode.CHAT).exists():
            raise ChatInputError(f"The model {group!r} is disabled by an operator; choose another.")
        raise ChatInputError(f"There is no chat model called {group!r}.")
    return group


def new_conversation(
    owner: Any, model_group: str, system_prompt: str = "", temperature: float | None = None
) -> Conversation:
    check_model(model_group)
    if len(system_prompt) > 20000:
        raise ChatInputError("The system prompt is too long (20,000 characters at most).")
    return Conversation.objects.create(
        owner=owner, model_group=model_group, system_prompt=system_prompt, temperature=temperature
    )


def _placeholder(conversation: Conversation) -> Message:
    return Message.objects.create(
        conversation=conversation,
        role=MessageRole.ASSISTANT,
        status=MessageStatus.STREAMING,
        model_group=conversation.model_group,
    )


@transaction.atomic
def start_turn(conversation: Conversation, text: Any) -> Message:
    """Save the user's message and an empty answer to fill; returns the answer."""
    text = check_text(text)
    check_model(conversation.model_group)
    Message.objects.create(conversation=conversation, role=MessageRole.USER, content=text)
    if not conversation.title:
        conversation.title_from(text)
    conversation.save(update_fields=["title", "updated_at"])
    return _placeholder(conversation)


@transaction.atomic
def regenerate(conversation: Conversation) -> Message:
    """Replace the last answer with a new one to fill."""
    check_model(conversation.model_group)
    last = conversation.messages.order_by("-created_at", "-id").first()
    if last is None:
        raise ChatInputError("There is nothing to regenerate yet.")
    if last.role == MessageRole.ASSISTANT:
        if last.status == MessageStatus.STREAMING:
            raise ChatInputError("The answer is still being written.")
        last.delete()
    conversation.save(update_fields=["updated_at"])
    return _placeholder(conversation)


@transaction.atomic
def edit_and_resend(conversation: Conversation, message: Message, text: Any) -> Message:
    """Change a user message and answer it again. Everything after it is removed (truncating: one
    line of history, no branches)."""
    text = check_text(text)
    check_model(conversation.model_group)
    if message.role != MessageRole.USER or message.conversation_id != conversation.pk:
        raise ChatInputError("Only your own messages can be edited.")
    conversation.messages.filter(created_at__gt=message.created_at).delete()
    conversation.messages.filter(created_at=message.created_at, id__gt=message.pk).delete()
    message.content = text
    message.save(update_fields=["content"])
    conversation.save(update_fields=["updated_at"])
    return _placeholder(conversation)


def history(answer: Message) -> list[dict[str, str]]:
    """The request for an answer: the system prompt, then every earlier turn that holds text."""
    conversation = answer.conversation
    messages: list[dict[str, str]] = []
    if conversation.system_prompt.strip():
        messages.append({"role": "system", "content": conversation.system_prompt})
    earlier = conversation.messages.filter(created_at__lte=answer.created_at).exclude(pk=answer.pk)
    for message in earlier.exclude(status=MessageStatus.FAILED).order_by("created_at", "id"):
        if message.content:
            messages.append({"role": message.role, "content": message.content})
    return messages


def ground(answer: Message, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """With collections attached, the last question is asked over passages retrieved for it (fenced
    as data, numbered for citations), and the answer keeps them as its sources."""
    from documents import services as documents
    from documents.models import Collection

    conversation = answer.conversation
    collections = list(Collection.objects.readable_by(conversation.owner).filter(conversations=conversation))
    if not collections or not messages or messages[-1]["role"] != "user":
        return messages
    question = messages[-1]["content"]
    passages = documents.search(collections, question, user_id=conversation.owner_id, top_k=5)
    answer.sources = [
        {
            "number": number,
            "document": p.document,
            "document_id": p.document_id,
            "page": p.page,
            "content": p.text,
            "score": p.score,
        }
        for number, p in enumerate(passages, start=1)
    ]
    grounded = documents.prompt_messages(question, passages, conversation.system_prompt)
    earlier = [m for m in messages[:-1] if m["role"] != "system"]
    return [grounded[0], *earlier, grounded[1]]


def request_for(answer: Message) -> tuple[list[dict[str, Any]], int]:
    """The messages to send for an answer, trimmed to the context window, and how many were left out.
    The connection stays open for a short answer's final save; a stream that lasts longer gives it
    back at its first partial save (``_save_partial``), so long streams hold none."""
    return gateway.fit_messages(answer.conversation.model_group, ground(answer, history(answer)))


def _save_partial(answer: Message) -> None:
    answer.save(update_fields=["content", "updated_at"])
    _close_connection()  # the stream may last minutes: do not hold a connection meanwhile


def _finish(answer: Message) -> None:
    """The answer's final save, and its stream's flags cleared, in one trip to a thread."""
    answer.save()
    cache.delete_many([STOP_KEY.format(answer.pk), STREAMING_KEY.format(answer.pk)])
    _close_connection()


def generation_params(conversation: Conversation) -> dict[str, Any]:
    return {"temperature": conversation.temperature} if conversation.temperature is not None else {}


def context_for(answer: Message, app: str) -> gateway.CallContext:
    return gateway.CallContext(app=app, user_id=answer.conversation.owner_id)


def _failed(answer: Message, error: gateway.GatewayError) -> None:
    answer.error_kind = error.kind  # type: ignore[attr-defined]  # for the API's status code
    answer.status = MessageStatus.FAILED
    answer.error = error.message
    if error.outcome is not None:
        answer.apply_outcome(error.outcome)
    if isinstance(error, gateway.StreamInterrupted):
        answer.content = error.partial_text


def complete(answer: Message, *, app: str = "chat") -> Message:
    """Answer without streaming (the API, and pages without JavaScript)."""
    group = answer.conversation.model_group
    messages, dropped = gateway.fit_messages(group, ground(answer, history(answer)))
    answer.context_dropped = dropped
    try:
        result = gateway.chat(
            group, messages, context=context_for(answer, app), **generation_params(answer.conversation)
        )
    except gateway.GatewayError as error:
        _failed(answer, error)
    else:
        answer.content = result.text
        answer.status = MessageStatus.COMPLETE
        answer.apply_outcome(result.outcome)
    answer.save()
    return answer


@dataclass
class StreamEvent:
    kind: str  # token / error / done
    text: str = ""


def request_stop(answer: Message) -> None:
    """Ask whichever process streams this answer to stop (shared through Redis)."""
    cache.set(STOP_KEY.format(answer.pk), 1, timeout=600)


async def _stop_requested(answer_id: int) -> None:
    # Polled, not an asyncio.Event: the Stop request may arrive at another process or host.
    while True:
        await asyncio.sleep(STOP_POLL)
        if await cache.aget(STOP_KEY.format(answer_id)):
            return


async def claim_stream(answer: Message) -> bool:
    """One stream per answer, whichever process a (re)connecting browser reaches."""
    return bool(await cache.aadd(STREAMING_KEY.format(answer.pk), 1, timeout=settings.CHAT_STREAM_MAX_SECONDS))


async def stream(
    answer: Message, *, app: str = "chat", prepared: tuple[list[dict[str, Any]], int] | None = None
) -> AsyncIterator[StreamEvent]:
    """Stream the answer: token events, then the final message saved (``done``).

    The partial text is saved every second, and kept whatever ends the stream: Stop (``stopped``),
    a provider failure (``failed``, with the error) or the client going away (``interrupted``).
    """
    conversation = answer.conversation
    group = conversation.model_group
    messages, dropped = prepared if prepared is not None else await sync_to_async(request_for)(answer)
    answer.context_dropped = dropped
    chat_stream = gateway.astream_chat(
        group, messages, context=context_for(answer, app), **generation_params(conversation)
    )
    iterator = chat_stream.__aiter__()
    stop_watch = asyncio.ensure_future(_stop_requested(answer.pk))
    saved_at = time.monotonic()
    status = MessageStatus.COMPLETE
    step: asyncio.Future[str] | None = None
    try:
        while True:
            step = asyncio.ensure_future(iterator.__anext__())
            while not (await asyncio.wait({step, stop_watch}, timeout=HEARTBEAT_SECONDS, return_when=FIRST))[0]:
                answer.content = chat_stream.partial_text
                await sync_to_async(_save_partial)(answer)  # alive, waiting on a slow provider
                saved_at = time.monotonic()
            if not step.done():  # Stop was pressed while waiting for the provider
                step.cancel()
                await asyncio.gather(step, return_exceptions=True)
                status = MessageStatus.STOPPED
                break
            try:
                delta = step.result()
            except StopAsyncIteration:
                break
            yield StreamEvent("token", delta)
            if stop_watch.done():
                await chat_stream.aclose()
                status = MessageStatus.STOPPED
                break
            if time.monotonic() - saved_at > SAVE_EVERY:
                answer.content = chat_stream.partial_text
                await sync_to_async(_save_partial)(answer)
                saved_at = time.monotonic()
    except gateway.GatewayError as error:
        _failed(answer, error)
        await sync_to_async(_finish)(answer)
        yield StreamEvent("error", error.message)
        yield StreamEvent("done")
        return
    except (asyncio.CancelledError, GeneratorExit):
        # The client went away (or the server is stopping): close the upstream call, keep the text.
        if step is not None and not step.done():
            step.cancel()
            await asyncio.shield(asyncio.gather(step, return_exceptions=True))
        await asyncio.shield(chat_stream.aclose())
        answer.content = chat_stream.partial_text
        answer.status = MessageStatus.INTERRUPTED
        if chat_stream.abandoned is not None:
            answer.apply_outcome(chat_stream.abandoned)
        await asyncio.shield(sync_to_async(_finish)(answer))
        raise
    finally:
        stop_watch.cancel()
    answer.content = chat_stream.partial_text
    answer.status = status
    result = chat_stream.result
    if result is not None:
        answer.content = result.text
        answer.apply_outcome(result.outcome)
    elif chat_stream.abandoned is not None:
        answer.apply_outcome(chat_stream.abandoned)
    await sync_to_async(_finish)(answer)
    yield StreamEvent("done")
