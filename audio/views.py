"""The audio pages: transcriptions, text to speech, and voice conversation. Every lookup starts from
the user; another user's record is a 404. Recorded and generated audio is served as a download
with its own audio type, never inline as HTML."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from assistant_project.http import AuthenticatedHttpRequest
from chat.models import Conversation
from chat.services import ChatInputError, chat_groups, new_conversation
from providers import gateway

from . import services
from .models import SpeechClip, Transcription

AUDIO_TYPES = {
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".m4a": "audio/mp4",
    ".ogg": "audio/ogg",
    ".flac": "audio/flac",
    ".webm": "audio/webm",
    ".opus": "audio/ogg",
    ".aac": "audio/aac",
}


@login_required
@require_http_methods(["GET", "POST"])
def index(request: AuthenticatedHttpRequest) -> HttpResponse:
    status = 200
    if request.method == "POST":
        uploaded = request.FILES.get("file")
        if uploaded is None:
            messages.error(request, "Choose an audio file.")
            status = 400
        else:
            try:
                record = services.start_transcription(request.user, uploaded, request.POST.get("language", ""))
            except services.AudioRefused as exc:
                messages.error(request, str(exc))
                status = 400
            else:
                return redirect("audio:transcription", record.pk)
    context = {
        "transcriptions": Transcription.objects.for_user(request.user)[:50],
        "clips": SpeechClip.objects.for_user(request.user)[:20],
        "voices": services.VOICES,
        "formats": list(services.FORMATS),
        "conversations": Conversation.objects.for_user(request.user)[:50],
        "max_chars": settings.SPEECH_MAX_CHARS,
    }
    return TemplateResponse(request, "audio/index.html", context, status=status)


@login_required
@require_GET
def transcription(request: AuthenticatedHttpRequest, transcription_id: int) -> HttpResponse:
    record = get_object_or_404(Transcription.objects.for_user(request.user), pk=transcription_id)
    template = "audio/_transcription.html" if request.htmx else "audio/transcription.html"
    return TemplateResponse(request, template, {"record": record})


@login_required
@require_GET
def transcript_download(request: AuthenticatedHttpRequest, transcription_id: int, fmt: str) -> HttpResponse:
    record = get_object_or_404(Transcription.objects.for_user(request.user), pk=transcription_id)
    if fmt == "txt":
        body, content_type = record.text, "text/plain"
    elif fmt == "srt":
        body, content_type = services.to_srt(record.segments), "application/x-subrip"
    elif fmt == "vtt":
        body, content_type = services.to_vtt(record.segments), "text/vtt"
    else:
        raise Http404
    response = HttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    name = slugify(record.original_name.rsplit(".", 1)[0]) or f"transcript-{record.pk}"
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response


def _audio_response(file_field: object, name: str, content_type: str, *, download: bool) -> FileResponse:
    response = FileResponse(file_field.open("rb"), content_type=content_type, as_attachment=download, filename=name)  # type: ignore[attr-defined]
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_GET
def transcription_audio(request: AuthenticatedHttpRequest, transcription_id: int) -> FileResponse:
    record = get_object_or_404(Transcription.objects.for_user(request.user), pk=transcription_id)
    extension = "." + record.original_name.rsplit(".", 1)[-1].lower()
    return _audio_response(
        record.audio, record.original_name, AUDIO_TYPES.get(extension, "application/octet-stream"), download=True
    )


@login_required
@require_POST
def speech(request: AuthenticatedHttpRequest) -> HttpResponse:
    try:
        clip = services.speak(
            request.user, request.POST.get("text", ""), request.POST.get("voice"), request.POST.get("format")
        )
    except services.AudioRefused as exc:
        messages.error(request, str(exc))
    except gateway.GatewayError as exc:
        messages.error(request, f"Speech failed: {exc.message}")
    else:
        messages.success(request, "Spoken.")
        return redirect(f"{reverse('audio:index')}#clip-{clip.pk}")
    return redirect("audio:index")


@login_required
@require_GET
def clip_audio(request: AuthenticatedHttpRequest, clip_id: int) -> FileResponse:
    clip = get_object_or_404(SpeechClip.objects.for_user(request.user), pk=clip_id)
    extension = "wav" if clip.content_type == "audio/wav" else clip.format
    return _audio_response(
        clip.audio, f"speech-{clip.pk}.{extension}", clip.content_type, download=request.GET.get("download") == "1"
    )


@login_required
@require_http_methods(["GET", "POST"])
def voice(request: AuthenticatedHttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            conversation = new_conversation(request.user, request.POST.get("model", ""))
        except ChatInputError as exc:
            messages.error(request, str(exc))
            return redirect("audio:voice")
        return redirect("audio:voice_conversation", conversation.pk)
    return TemplateResponse(request, "audio/voice.html", {"conversation": None, "models": chat_groups()})


@login_required
@require_GET
def voice_conversation(request: AuthenticatedHttpRequest, conversation_id: int) -> HttpResponse:
    conversation = get_object_or_404(Conversation.objects.for_user(request.user), pk=conversation_id)
    return TemplateResponse(
        request,
        "audio/voice.html",
        {"conversation": conversation, "models": chat_groups(), "messages_list": list(conversation.messages.all())},
    )


def voice_turn_json(request: AuthenticatedHttpRequest, conversation: Conversation) -> JsonResponse:
    uploaded = request.FILES.get("file")
    if uploaded is None:
        return JsonResponse(
            {"error": {"type": "invalid_request", "message": "Send the recording as 'file'."}}, status=400
        )
    try:
        turn = services.voice_turn(request.user, conversation, uploaded)
    except (services.AudioRefused, ChatInputError) as exc:
        return JsonResponse({"error": {"type": "invalid_request", "message": str(exc)}}, status=400)
    except gateway.GatewayError as exc:
        return JsonResponse({"error": {"type": "provider_error", "message": exc.message}}, status=502)
    return JsonResponse(
        {
            "transcript": turn.transcript,
            "answer": turn.answer.content,
            "message_id": turn.answer.pk,
            "status": turn.answer.status,
            "error": turn.error or None,
            "audio_url": request.build_absolute_uri(reverse("audio:clip", args=[turn.clip.pk])) if turn.clip else None,
        },
        status=200 if turn.clip else 502,
    )


@login_required
@require_POST
def voice_turn(request: AuthenticatedHttpRequest, conversation_id: int) -> JsonResponse:
    conversation = get_object_or_404(Conversation.objects.for_user(request.user), pk=conversation_id)
    return voice_turn_json(request, conversation)
