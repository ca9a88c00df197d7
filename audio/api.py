"""The audio API, keeping the original design's client contract."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view, parser_classes
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from assistant_project import api_schema as schema
from assistant_project.api_errors import error_body
from chat.models import Conversation
from providers import gateway

from . import services
from .models import Transcription
from .views import voice_turn_json


class SpeechIn(serializers.Serializer[Any]):
    text = serializers.CharField(allow_blank=True, trim_whitespace=False)
    voice = serializers.CharField(required=False, allow_blank=True)
    format = serializers.CharField(required=False, allow_blank=True)


@extend_schema(
    request=inline_serializer(
        "TranscriptionIn", {"file": serializers.FileField(), "language": serializers.CharField()}
    ),
    responses={
        202: inline_serializer(
            "TranscriptionQueued", {"id": serializers.IntegerField(), "status": serializers.CharField()}
        )
    },
)
@api_view(["POST"])
@parser_classes([MultiPartParser])
def transcriptions(request: Request) -> Response:
    uploaded = request.FILES.get("file")
    if uploaded is None:
        raise ValidationError({"file": ["Send the audio as the multipart field 'file'."]})
    try:
        record = services.start_transcription(request.user, uploaded, str(request.POST.get("language", "")))
    except services.AudioRefused as exc:
        raise ValidationError({"file": [str(exc)]}) from None
    return Response({"id": record.pk, "status": record.status}, status=status.HTTP_202_ACCEPTED)


@extend_schema(responses=schema.Transcription)
@api_view(["GET"])
def transcription(request: Request, transcription_id: int) -> Response:
    record = get_object_or_404(Transcription.objects.for_user(request.user), pk=transcription_id)
    return Response(record.as_api())


@extend_schema(request=SpeechIn, responses={200: OpenApiResponse(description="The audio bytes.")})
@api_view(["POST"])
@parser_classes([JSONParser])
def speech(request: Request) -> Any:
    data = SpeechIn(data=request.data)
    data.is_valid(raise_exception=True)
    try:
        clip = services.speak(
            request.user,
            data.validated_data["text"],
            data.validated_data.get("voice"),
            data.validated_data.get("format"),
            app="api",
        )
    except services.AudioRefused as exc:
        raise ValidationError({"text": [str(exc)]}) from None
    except gateway.GatewayError as exc:
        code = exc.status if exc.status in (429, 503, 504) else 502  # over budget: 429, as the chat API
        return Response(error_body(exc.kind if code == 429 else "provider_error", exc.message), status=code)
    with clip.audio.open("rb") as handle:
        return HttpResponse(handle.read(), content_type=clip.content_type)


@extend_schema(
    request=inline_serializer(
        "VoiceTurnIn", {"file": serializers.FileField(), "conversation_id": serializers.IntegerField()}
    ),
    responses=schema.VoiceTurn,
)
@api_view(["POST"])
@parser_classes([MultiPartParser])
def conversation(request: Request) -> Any:
    raw = str(request.POST.get("conversation_id", ""))
    if not raw.isdigit():
        raise ValidationError({"conversation_id": ["Send the id of one of your conversations."]})
    item = get_object_or_404(Conversation.objects.for_user(request.user), pk=int(raw))
    return voice_turn_json(request._request, item)  # type: ignore[arg-type]
