"""The chat pages. Every lookup starts from the user; another user's conversation is a 404.

Pages work without JavaScript (a plain form post answers without streaming); with htmx, sending
returns the new turn and the answer streams in over Server-Sent Events from ``stream_message``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import reswap, retarget

from assistant_project.http import AuthenticatedHttpRequest, EventStreamResponse, sse

from . import services
from .models import Conversation, Message, MessageRole, MessageStatus

SIDEBAR_LIMIT = 100


def _conversation(request: AuthenticatedHttpRequest, conversation_id: int) -> Conversation:
    return get_object_or_404(Conversation.objects.for_user(request.user), pk=conversation_id)


def _sidebar(request: AuthenticatedHttpRequest) -> dict[str, Any]:
    query = request.GET.get("q", "")[:200]
    conversations = Conversation.objects.for_user(request.user).search(query)[:SIDEBAR_LIMIT]
    return {"conversations": conversations, "query": query}


def _page(
    request: AuthenticatedHttpRequest,
    conversation: Conversation | None,
    *,
    error: str = "",
    draft: str = "",
    status: int = 200,
) -> TemplateResponse:
    from documents.models import Collection

    context = {
        **_sidebar(request),
        "collections": list(Collection.objects.readable_by(request.user)) if conversation else [],
        "attached": set(conversation.collections.values_list("pk", flat=True)) if conversation else set(),
        "conversation": conversation,
        "messages_list": list(conversation.messages.select_related(None)) if conversation else [],
        "models": services.chat_groups(),
        "error": error,
        "draft": draft,
        "max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
    }
    return TemplateResponse(request, "chat/page.html", context, status=status)


@login_required
@require_GET
def index(request: AuthenticatedHttpRequest) -> HttpResponse:
    if request.htmx and request.htmx.target == "conversation-list":
        return TemplateResponse(request, "chat/_sidebar_list.html", _sidebar(request))
    return _page(request, None)


@login_required
@require_POST
def new_conversation(request: AuthenticatedHttpRequest) -> HttpResponse:
    try:
        conversation = services.new_conversation(
            request.user, request.POST.get("model", ""), request.POST.get("system_prompt", "")
        )
    except services.ChatInputError as exc:
        return _page(request, None, error=str(exc), status=400)
    return redirect("chat:detail", conversation.pk)


@login_required
@require_GET
def detail(request: AuthenticatedHttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    # An answer whose streaming process died shows as interrupted (with Regenerate) at once.
    conversation.messages.interrupt_stale_streams(settings.CHAT_STREAM_STALE_SECONDS)
    return _page(request, conversation)


def _answer_response(request: AuthenticatedHttpRequest, conversation: Conversation, answer: Message) -> HttpResponse:
    """With htmx: the conversation's messages, the answer streaming. Without: answer, then redirect."""
    if request.htmx:
        messages_list = list(conversation.messages.all())
        return TemplateResponse(
            request, "chat/_message_list.html", {"conversation": conversation, "messages_list": messages_list}
        )
    services.complete(answer)
    return redirect("chat:detail", conversation.pk)


def _input_error(request: AuthenticatedHttpRequest, conversation: Conversation, error: str, draft: str) -> HttpResponse:
    if request.htmx:
        response = HttpResponse(render_to_string("chat/_error.html", {"error": error}, request))
        return reswap(retarget(response, "#chat-error"), "innerHTML")
    return _page(request, conversation, error=error, draft=draft, status=400)


@login_required
@require_POST
def send(request: AuthenticatedHttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    text = request.POST.get("message", "")
    try:
        answer = services.start_turn(conversation, text)
    except services.ChatInputError as exc:
        return _input_error(request, conversation, str(exc), text)
    return _answer_response(request, conversation, answer)


@login_required
@require_POST
def regenerate(request: AuthenticatedHttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    try:
        answer = services.regenerate(conversation)
    except services.ChatInputError as exc:
        return _input_error(request, conversation, str(exc), "")
    return _answer_response(request, conversation, answer)


@login_required
@require_POST
def edit_message(request: AuthenticatedHttpRequest, conversation_id: int, message_id: int) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    message = get_object_or_404(conversation.messages.filter(role=MessageRole.USER), pk=message_id)
    text = request.POST.get("message", "")
    try:
        answer = services.edit_and_resend(conversation, message, text)
    except services.ChatInputError as exc:
        return _input_error(request, conversation, str(exc), text)
    return _answer_response(request, conversation, answer)


@login_required
@require_POST
def stop_message(request: AuthenticatedHttpRequest, conversation_id: int, message_id: int) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    answer = get_object_or_404(conversation.messages.filter(role=MessageRole.ASSISTANT), pk=message_id)
    services.request_stop(answer)
    return HttpResponse(status=204)


@login_required
@require_POST
def rename(request: AuthenticatedHttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    title = " ".join(request.POST.get("title", "").split())[:200]
    if title:
        conversation.title = title
        conversation.save(update_fields=["title", "updated_at"])
    return redirect("chat:detail", conversation.pk)


@login_required
@require_POST
def delete(request: AuthenticatedHttpRequest, conversation_id: int) -> HttpResponse:
    _conversation(request, conversation_id).delete()
    return redirect("chat:index")


@login_required
@require_POST
def update_settings(request: AuthenticatedHttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    try:
        model = services.check_model(request.POST.get("model", conversation.model_group))
        temperature_text = request.POST.get("temperature", "").strip()
        temperature = float(temperature_text) if temperature_text else None
        if temperature is not None and not 0 <= temperature <= 2:
            raise services.ChatInputError("Temperature goes from 0 to 2.")
    except ValueError:
        return _page(request, conversation, error="Temperature must be a number from 0 to 2.", status=400)
    except services.ChatInputError as exc:
        return _page(request, conversation, error=str(exc), status=400)
    from documents.models import Collection

    conversation.model_group = model
    conversation.system_prompt = request.POST.get("system_prompt", "")[:20000]
    conversation.temperature = temperature
    conversation.save()
    chosen = [value for value in request.POST.getlist("collections") if value.isdigit()]
    conversation.collections.set(Collection.objects.readable_by(request.user).filter(pk__in=chosen))
    return redirect("chat:detail", conversation.pk)


@login_required
@require_GET
def export(request: AuthenticatedHttpRequest, conversation_id: int, fmt: str) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    messages_list = list(conversation.messages.all())
    name = slugify(conversation.display_title) or f"conversation-{conversation.pk}"
    if fmt == "json":
        payload = {
            "id": conversation.pk,
            "title": conversation.title,
            "model": conversation.model_group,
            "system_prompt": conversation.system_prompt,
            "temperature": conversation.temperature,
            "created_at": conversation.created_at.isoformat(),
            "messages": [message.as_api() for message in messages_list],
        }
        response: HttpResponse = JsonResponse(payload, json_dumps_params={"indent": 2})
        response["Content-Disposition"] = f'attachment; filename="{name}.json"'
        return response
    if fmt != "md":
        raise Http404
    lines = [f"# {conversation.display_title}", "", f"Model: {conversation.model_group}", ""]
    if conversation.system_prompt:
        lines += ["## System prompt", "", conversation.system_prompt, ""]
    for message in messages_list:
        heading = (
            "You" if message.role == MessageRole.USER else f"Assistant ({message.provider or message.model_group})"
        )
        lines += [f"## {heading}", "", message.content or f"_{message.get_status_display()}_", ""]
    response = HttpResponse("\n".join(lines), content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.md"'
    return response


def _message_html(request: HttpRequest, message: Message) -> str:
    context = {"message": message, "conversation": message.conversation, "is_last": True}
    return render_to_string("chat/_message.html", context, request)


@login_required
@require_GET
async def stream_message(request: HttpRequest, conversation_id: int, message_id: int) -> HttpResponseBase:
    user = await request.auser()
    answer = (
        await Message.objects.for_user(user)
        .select_related("conversation")
        .filter(pk=message_id, conversation_id=conversation_id, role=MessageRole.ASSISTANT)
        .afirst()
    )
    if answer is None:
        raise Http404("No such message.")

    async def events() -> AsyncIterator[str]:
        if answer.status == MessageStatus.STREAMING and await services.claim_stream(answer):
            async for event in services.stream(answer):
                if event.kind == "token":
                    yield sse("token", {"text": event.text})
                elif event.kind == "error":
                    yield sse("error", {"message": event.text})
        else:
            # Already answered, or streamed by another connection: wait for it to finish.
            # If the process streaming it died, the answer goes stale and is marked interrupted.
            stale_after = timedelta(seconds=settings.CHAT_STREAM_STALE_SECONDS)
            for _ in range(settings.CHAT_STREAM_MAX_SECONDS * 2):
                await answer.arefresh_from_db()
                if answer.status != MessageStatus.STREAMING:
                    break
                if answer.updated_at < timezone.now() - stale_after:
                    await Message.objects.filter(pk=answer.pk).ainterrupt_stale_streams(stale_after.total_seconds())
                    await answer.arefresh_from_db()
                    break
                await asyncio.sleep(0.5)
        await services.release_db()
        yield sse("done", {"html": await sync_to_async(_message_html)(request, answer), "status": answer.status})

    await services.release_db()
    return EventStreamResponse(events())
