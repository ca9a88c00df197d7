"""Audio: transcriptions (in Celery), speech, subtitles, and a spoken turn of a chat conversation.
Every call goes through the gateway, so operators' transcription and speech deployments route and
fall back like chat."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.template.defaultfilters import filesizeformat

from assistant_project import pending
from providers import gateway

from .models import SpeechClip, Transcription, TranscriptionStatus

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = {".mp3", ".wav", ".m4a", ".ogg", ".flac", ".webm"}
VOICES = ["alloy", "echo", "fable", "onyx", "nova", "shimmer"]
FORMATS = {"mp3": "audio/mpeg", "wav": "audio/wav", "opus": "audio/ogg", "flac": "audio/flac", "aac": "audio/aac"}


class AudioRefused(Exception):
    """Input refused before anything is stored or sent; the message says why."""


def _extension(name: str) -> str:
    return ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""


def clean_name(name: str) -> str:
    from documents.services import clean_filename

    return clean_filename(name)


def check_upload(uploaded: UploadedFile[Any]) -> str:
    name = clean_name(uploaded.name or "")
    if _extension(name) not in AUDIO_EXTENSIONS:
        raise AudioRefused(
            f"Unsupported audio format {_extension(name) or '(none)'}: upload mp3, wav, m4a, ogg, flac or webm."
        )
    if not uploaded.size:
        raise AudioRefused("The file is empty.")
    if uploaded.size > settings.AUDIO_MAX_BYTES:
        raise AudioRefused(
            f"The file is {filesizeformat(uploaded.size)}; the limit is {filesizeformat(settings.AUDIO_MAX_BYTES)}."
        )
    return name


def probe_duration(data: bytes) -> float:
    """Seconds of audio in the file; raises AudioRefused for anything that is not readable audio."""
    import av

    try:
        container = av.open(io.BytesIO(data), mode="r")
    except Exception:
        raise AudioRefused("The file is not audio that can be read.") from None
    try:
        if not container.streams.audio:
            raise AudioRefused("The file has no audio in it.")
        if container.duration:
            return float(container.duration) / 1_000_000
        seconds = 0.0
        for frame in container.decode(audio=0):  # no duration in the header (e.g. webm from a browser)
            seconds += frame.samples / float(frame.sample_rate or 1)
        if seconds <= 0:
            raise AudioRefused("The file holds no audio samples.")
        return seconds
    except AudioRefused:
        raise
    except Exception:
        raise AudioRefused("The audio is corrupt or truncated and cannot be read.") from None
    finally:
        container.close()


def start_transcription(owner: Any, uploaded: UploadedFile[Any], language: str = "") -> Transcription:
    name = check_upload(uploaded)
    language = (language or "").strip()[:16]
    with transaction.atomic():
        record = Transcription(owner=owner, original_name=name, size=uploaded.size or 0, language_hint=language)
        record.audio.save(name, uploaded, save=False)
        record.save()
        transaction.on_commit(lambda: _enqueue(record.pk))
    return record


def _enqueue(record_id: int) -> None:
    from .tasks import transcribe_audio

    pending.mark("transcription", record_id)
    transcribe_audio.delay(record_id)


def recover(stale_after: int) -> list[int]:
    """Send again transcriptions whose task was lost (as ``documents.services.recover``)."""
    unfinished = Transcription.objects.filter(status__in=[TranscriptionStatus.QUEUED, TranscriptionStatus.PROCESSING])
    lost = pending.lost("transcription", unfinished, TranscriptionStatus.QUEUED, stale_after)
    for pk in lost:
        _enqueue(pk)
    if lost:
        logger.warning("re-enqueued %d transcription(s) whose task was lost: %s", len(lost), lost)
    return lost


def _fail(record: Transcription, reason: str) -> None:
    record.status = TranscriptionStatus.FAILED
    record.error = reason
    record.save()


def transcribe(record_id: int) -> None:
    """The task's work: check the audio, transcribe it through the gateway, keep the result."""
    try:
        _transcribe(record_id)
    finally:
        pending.clear("transcription", record_id)


def _transcribe(record_id: int) -> None:
    record = Transcription.objects.filter(pk=record_id).first()
    if record is None:
        return
    record.status = TranscriptionStatus.PROCESSING
    record.error = ""
    record.save(update_fields=["status", "error", "updated_at"])
    try:
        with record.audio.open("rb") as handle:
            data = handle.read()
        seconds = probe_duration(data)
        if seconds > settings.AUDIO_MAX_SECONDS:
            raise AudioRefused(f"The audio lasts {seconds:.0f} s; the limit is {settings.AUDIO_MAX_SECONDS} s.")
        result = gateway.transcribe(
            settings.AUDIO_TRANSCRIPTION_GROUP,
            data,
            record.original_name,
            context=gateway.CallContext(app="audio", user_id=record.owner_id),
            language=record.language_hint or None,
        )
    except AudioRefused as exc:
        _fail(record, str(exc))
        return
    except gateway.GatewayError as exc:
        if exc.outcome is not None:
            record.apply_outcome(exc.outcome)
        _fail(record, f"Transcription failed: {exc.message}")
        return
    except Exception:
        logger.exception("transcription %s failed", record_id)
        _fail(record, "The transcription could not be made (an internal error).")
        return
    record.text = result.text
    record.language = result.language or ""
    record.duration = result.duration if result.duration is not None else seconds
    record.segments = [
        {"start": float(s.get("start") or 0), "end": float(s.get("end") or 0), "text": str(s.get("text") or "").strip()}
        for s in result.segments
    ] or [{"start": 0.0, "end": record.duration or seconds, "text": result.text}]
    record.apply_outcome(result.outcome)
    record.status = TranscriptionStatus.READY
    record.save()


def _timestamp(seconds: float, separator: str) -> str:
    milliseconds = round(seconds * 1000)
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(segments: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{number}\n{_timestamp(s['start'], ',')} --> {_timestamp(s['end'], ',')}\n{s['text']}\n"
        for number, s in enumerate(segments, start=1)
    )


def to_vtt(segments: list[dict[str, Any]]) -> str:
    cues = "\n".join(f"{_timestamp(s['start'], '.')} --> {_timestamp(s['end'], '.')}\n{s['text']}\n" for s in segments)
    return f"WEBVTT\n\n{cues}"


def check_speech(text: Any, voice: Any, response_format: Any) -> tuple[str, str, str]:
    if not isinstance(text, str) or not text.strip():
        raise AudioRefused("There is no text to speak.")
    if len(text) > settings.SPEECH_MAX_CHARS:
        raise AudioRefused(f"The text is {len(text):,} characters; the limit is {settings.SPEECH_MAX_CHARS:,}.")
    voice = voice or VOICES[0]
    if voice not in VOICES:
        raise AudioRefused(f"Unknown voice {voice!r}; choose one of {', '.join(VOICES)}.")
    response_format = response_format or "mp3"
    if response_format not in FORMATS:
        raise AudioRefused(f"Unknown format {response_format!r}; choose one of {', '.join(FORMATS)}.")
    return text.strip(), voice, response_format


def speak(owner: Any, text: Any, voice: Any = None, response_format: Any = None, *, app: str = "audio") -> SpeechClip:
    text, voice, response_format = check_speech(text, voice, response_format)
    result = gateway.speak(
        settings.AUDIO_SPEECH_GROUP,
        text,
        context=gateway.CallContext(app=app, user_id=owner.pk),
        voice=voice,
        response_format=response_format,
    )
    clip = SpeechClip(owner=owner, text=text, voice=voice, format=response_format, content_type=result.content_type)
    clip.apply_outcome(result.outcome)
    extension = "wav" if result.content_type == "audio/wav" else response_format
    clip.audio.save(f"speech.{extension}", ContentFile(result.audio), save=False)
    clip.save()
    return clip


@dataclass
class VoiceTurn:
    transcript: str
    answer: Any  # chat.models.Message
    clip: SpeechClip | None
    error: str = ""


def voice_turn(owner: Any, conversation: Any, uploaded: UploadedFile[Any]) -> VoiceTurn:
    """A spoken turn: transcribe the recording, send the text to the conversation like a typed
    message, and speak the answer."""
    from chat import services as chat

    check_upload(uploaded)
    data = uploaded.read()
    seconds = probe_duration(data)
    if seconds > settings.AUDIO_MAX_SECONDS:
        raise AudioRefused(f"The recording lasts {seconds:.0f} s; the limit is {settings.AUDIO_MAX_SECONDS} s.")
    heard = gateway.transcribe(
        settings.AUDIO_TRANSCRIPTION_GROUP,
        data,
        clean_name(uploaded.name or "recording.webm"),
        context=gateway.CallContext(app="audio", user_id=owner.pk),
    )
    if not heard.text.strip():
        raise AudioRefused("No speech was heard in the recording.")
    answer = chat.complete(chat.start_turn(conversation, heard.text), app="audio")
    if answer.status != "complete":
        return VoiceTurn(heard.text, answer, None, answer.error)
    spoken_text = answer.content[: settings.SPEECH_MAX_CHARS]
    clip = speak(owner, spoken_text, response_format="wav")
    return VoiceTurn(heard.text, answer, clip)
