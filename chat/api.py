"""The chat API, keeping the original design's client contract. Another user's conversation answers
404 on every route."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from assistant_project import api_schema as schema
from assistant_project.accounts.models import ApiKey
from assistant_project.api_errors import error_body
from assistant_project.http import EventStreamResponse, sse

from . import services
from .models import Conversation, Message, MessageStatus


class ConversationIn(serializers.Serializer[Any]):
    model = serializers.CharField(max_length=100)
    system_prompt = serializers.CharField(required=False, allow_blank=True, max_length=20000, default="")
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=2, default=None)


class MessageIn(serializers.Serializer[Any]):
    message = serializers.CharField(allow_blank=True, trim_whitespace=False)


def conversation_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "conversation_id": conversation.pk,
        "title": conversation.title,
        "model": conversation.model_group,
        "system_prompt": conversation.system_prompt,
        "temperature": conversation.temperature,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
    }


def answer_json(answer: Message) -> dict[str, Any]:
    body = answer.as_api()
    return {
        "response": answer.content,
        "message_id": answer.pk,
        "status": answer.status,
        "model_used": body["model_used"],
        "provider": body["provider"],
        "model": body["model"],
        "usage": body["usage"],
        "cost": body["cost"],
        "latency_ms": body["latency_ms"],
        "ttft_ms": body["ttft_ms"],
        "fallbacks": body["fallbacks"],
        "attempts": body["attempts"],
        "downgraded_from": body["downgraded_from"],
        "context_dropped": body["context_dropped"],
        "error": body["error"] or None,
    }


def _input_error(exc: services.ChatInputError) -> ValidationError:
    return ValidationError({"message": [str(exc)]})


@extend_schema(request=ConversationIn, responses={201: schema.Conversation}, methods=["POST"])
@extend_schema(responses=schema.ConversationList, methods=["GET"])
@api_view(["GET", "POST"])
def conversations(request: Request) -> Response:
    if request.method == "GET":
        items = Conversation.objects.for_user(request.user)[:200]
        return Response({"conversations": [conversation_json(item) for item in items]})
    data = ConversationIn(data=request.data)
    data.is_valid(raise_exception=True)
    try:
        conversation = services.new_conversation(
            request.user,
            data.validated_data["model"],
            data.validated_data["system_prompt"],
            data.validated_data["temperature"],
        )
    except services.ChatInputError as exc:
        raise ValidationError({"model": [str(exc)]}) from None
    return Response(conversation_json(conversation), status=status.HTTP_201_CREATED)


@extend_schema(responses={204: None}, methods=["DELETE"])
@extend_schema(responses=schema.Conversation, methods=["GET"], operation_id="v1_chat_conversation_retrieve")
@api_view(["GET", "DELETE"])
def conversation(request: Request, conversation_id: int) -> Response:
    item = get_object_or_404(Conversation.objects.for_user(request.user), pk=conversation_id)
    if request.method == "DELETE":
        item.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
    return Response(conversation_json(item))


@extend_schema(responses=schema.MessageList, methods=["GET"])
@extend_schema(request=MessageIn, responses=schema.Answer, methods=["POST"])
@api_view(["GET", "POST"])
def messages(request: Request, conversation_id: int) -> Response:
    item = get_object_or_404(Conversation.objects.for_user(request.user), pk=conversation_id)
    if request.method == "GET":
        item.messages.interrupt_stale_streams(settings.CHAT_STREAM_STALE_SECONDS)
        return Response({"conversation_id": item.pk, "messages": [m.as_api() for m in item.messages.all()]})
    data = MessageIn(data=request.data)
    data.is_valid(raise_exception=True)
    try:
        answer = services.start_turn(item, data.validated_data["message"])
    except services.ChatInputError as exc:
        raise _input_error(exc) from None
    answer = services.complete(answer, app="api")
    if answer.status == MessageStatus.FAILED:
        payload = {key: value for key, value in answer_json(answer).items() if key != "error"}
        kind = getattr(answer, "error_kind", "")
        if kind in ("budget_exceeded", "rate_limited") and not answer.provider:
            return Response({**payload, **error_body(kind, answer.error)}, status=status.HTTP_429_TOO_MANY_REQUESTS)
        return Response({**payload, **error_body("provider_error", answer.error)}, status=status.HTTP_502_BAD_GATEWAY)
    return Response(answer_json(answer))


def _json_error(error_type: str, message: str, status_code: int) -> JsonResponse:
    return JsonResponse(error_body(error_type, message), status=status_code)


def _start_stream(
    request: HttpRequest, conversation_id: int
) -> tuple[Message, tuple[list[dict[str, Any]], int]] | JsonResponse:
    """Authenticate, find the conversation and save the turn, in one trip to a thread."""
    api_key = ApiKey.from_request(request)
    if api_key is None:
        return _json_error("authentication_error", "Send a valid API key: 'Authorization: Bearer KEY'.", 401)
    user = api_key.user
    item = Conversation.objects.for_user(user).filter(pk=conversation_id).first()
    if item is None:
        return _json_error("not_found", "No such conversation.", 404)
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return _json_error("invalid_request", 'The body must be JSON: {"message": "..."}.', 400)
    try:
        answer = services.start_turn(item, body.get("message") if isinstance(body, dict) else None)
    except services.ChatInputError as exc:
        return _json_error("invalid_request", str(exc), 400)
    answer.conversation = item
    return answer, services.request_for(answer)


@csrf_exempt  # API-key authentication only: no cookie, so no cross-site request can use it
@require_POST
async def stream_messages(request: HttpRequest, conversation_id: int) -> HttpResponseBase:
    """``POST .../messages/stream``: the answer as Server-Sent Events: ``token`` events, then ``done``
    with the same metadata as the non-streamed route (``error`` first if the provider failed)."""
    started = await sync_to_async(_start_stream)(request, conversation_id)
    if isinstance(started, JsonResponse):
        return started
    answer, prepared = started

    async def events() -> AsyncIterator[str]:
        async for event in services.stream(answer, app="api", prepared=prepared):
            if event.kind == "token":
                yield sse("token", {"token": event.text})
            elif event.kind == "error":
                yield sse("error", error_body("provider_error", event.text))
        yield sse("done", answer_json(answer))

    return EventStreamResponse(events())
