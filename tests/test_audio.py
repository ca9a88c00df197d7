"""Audio: transcription in a real worker (with fallback), speech, subtitles, voice turns, bad input,
isolation, and a browser that talks through a fake microphone and hears the answer."""

from __future__ import annotations

import io
import time
import wave
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client

from assistant_project.accounts.models import ApiKey
from audio import services
from audio.models import SpeechClip, Transcription
from chat.models import Conversation, Message
from providers import gateway, local_engines
from tests.conftest import AsgiServer, WorkerProcess, start_worker
from tests.fake_provider import wav_bytes
from tests.llm import LLMSetup

pytestmark = pytest.mark.slow


@pytest.fixture
def ears(llm: LLMSetup, settings) -> LLMSetup:
    """Transcription and speech on the fake provider: `ears` falls back to `scribe`."""
    llm.deployment("ears", "error-500", mode="transcription", input_cost_per_second="0.0001")
    llm.deployment("scribe", mode="transcription", input_cost_per_second="0.0002")
    llm.fallback("ears", "scribe")
    llm.deployment("voice", mode="speech", output_cost_per_character="0.00001")
    llm.deployment("talker")
    settings.AUDIO_TRANSCRIPTION_GROUP = "ears"
    settings.AUDIO_SPEECH_GROUP = "voice"
    return llm


@pytest.fixture
def audio_worker(ears: LLMSetup, tmp_path: Path) -> Iterator[WorkerProcess]:
    worker = start_worker(tmp_path, {"AUDIO_TRANSCRIPTION_GROUP": "ears", "AUDIO_SPEECH_GROUP": "voice"})
    yield worker
    worker.stop()


def settle(record: Transcription, timeout: float = 60) -> Transcription:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record.refresh_from_db()
        if not record.is_busy:
            return record
        time.sleep(0.2)
    raise AssertionError(f"still {record.status}")


def api(user: Any) -> Client:
    _, key = ApiKey.issue(user, "k")
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def test_transcription_in_a_worker_falls_back_and_costs_per_second(
    ears: LLMSetup, alice, alice_client: Client, audio_worker: WorkerProcess
) -> None:
    response = alice_client.post("/audio/", {"file": SimpleUploadedFile("memo.wav", wav_bytes(3.0)), "language": "en"})
    record = Transcription.objects.get(owner=alice)
    assert response["Location"] == f"/audio/transcriptions/{record.pk}/"
    page = alice_client.get(response["Location"]).content.decode()
    assert 'hx-trigger="every 1s"' in page or "Ready" in page
    settle(record)
    assert record.status == "ready", (record.error, audio_worker.log()[-2000:])
    assert record.text == ears.fake.transcript and record.duration == pytest.approx(3.0)
    assert record.model_group == "scribe", "the failing deployment fell back to the next"
    assert float(record.cost) == pytest.approx(3.0 * 0.0002)
    assert ears.fake.requests_for("/audio/transcriptions")[-1].form["language"] == "en"
    html = alice_client.get(f"/audio/transcriptions/{record.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "every 1s" not in html and ears.fake.transcript in html

    srt = alice_client.get(f"/audio/transcriptions/{record.pk}/transcript.srt")
    assert srt["Content-Disposition"] == 'attachment; filename="memo.srt"'
    assert srt.content.decode().startswith("1\n00:00:00,000 --> 00:00:03,000\n" + ears.fake.transcript)
    vtt = alice_client.get(f"/audio/transcriptions/{record.pk}/transcript.vtt").content.decode()
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:03.000\n")
    assert (
        alice_client.get(f"/audio/transcriptions/{record.pk}/transcript.txt").content.decode() == ears.fake.transcript
    )


def test_transcription_api_contract(ears: LLMSetup, alice, audio_worker: WorkerProcess) -> None:
    client = api(alice)
    queued = client.post("/api/v1/audio/transcriptions", {"file": SimpleUploadedFile("a.wav", wav_bytes(1.5))})
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    record_id = queued.json()["id"]
    settle(Transcription.objects.get(pk=record_id))
    body = client.get(f"/api/v1/audio/transcriptions/{record_id}").json()
    assert body["status"] == "ready" and body["text"] == ears.fake.transcript
    assert body["duration"] == pytest.approx(1.5) and body["segments"][0]["end"] == pytest.approx(1.5)
    assert body["provider"] == ears.provider.name and body["model"].startswith("openai/ok-")
    assert set(body) >= {"status", "text", "language", "duration", "segments", "provider", "model"}


@pytest.mark.parametrize(
    ("name", "data", "where", "reason"),
    [
        ("notes.txt", b"hello", "upload", "Unsupported audio format .txt"),
        ("empty.wav", b"", "upload", "empty"),
        ("text.mp3", b"this is plainly not audio at all " * 20, "task", "not audio that can be read"),
        ("cut.wav", wav_bytes(2.0)[:30], "task", "not audio"),
        ("long.wav", wav_bytes(4.0), "task", "the limit is 2 s"),
    ],
)
def test_bad_audio_is_refused_or_marked_failed_with_its_reason(
    ears: LLMSetup, alice, settings, name: str, data: bytes, where: str, reason: str
) -> None:
    settings.AUDIO_MAX_SECONDS = 2
    upload = SimpleUploadedFile(name, data)
    if where == "upload":
        with pytest.raises(services.AudioRefused, match=reason):
            services.start_transcription(alice, upload)
        assert not Transcription.objects.exists()
        return
    record = services.start_transcription(alice, upload)
    services.transcribe(record.pk)
    record.refresh_from_db()
    assert record.status == "failed" and reason in record.error, record.error
    assert ears.fake.requests_for("/audio/transcriptions") == [], "nothing was sent to a provider"


def test_oversized_audio_is_refused(ears: LLMSetup, alice, settings) -> None:
    settings.AUDIO_MAX_BYTES = 4096
    response = api(alice).post("/api/v1/audio/transcriptions", {"file": SimpleUploadedFile("big.wav", wav_bytes(2.0))})
    assert response.status_code == 400 and "the limit is 4.0" in response.json()["error"]["message"]


def test_a_bad_file_does_not_stop_the_worker(ears: LLMSetup, alice, audio_worker: WorkerProcess) -> None:
    bad = services.start_transcription(alice, SimpleUploadedFile("bad.mp3", b"garbage" * 100))
    good = services.start_transcription(alice, SimpleUploadedFile("good.wav", wav_bytes(1.0)))
    assert settle(bad).status == "failed"
    assert settle(good).status == "ready"
    assert audio_worker.process.poll() is None


def test_speech_api_returns_audio_and_costs_per_character(ears: LLMSetup, alice, settings) -> None:
    client = api(alice)
    text = "Hello from the platform."
    response = client.post(
        "/api/v1/audio/speech", {"text": text, "voice": "nova", "format": "wav"}, content_type="application/json"
    )
    assert response.status_code == 200 and response["Content-Type"] == "audio/wav"
    assert response.content[:4] == b"RIFF"
    clip = SpeechClip.objects.get(owner=alice)
    assert clip.voice == "nova" and float(clip.cost) == pytest.approx(len(text) * 0.00001)
    assert ears.fake.requests_for("/audio/speech")[-1].json["voice"] == "nova"
    settings.SPEECH_MAX_CHARS = 10
    for payload, words in (
        ({"text": ""}, "no text to speak"),
        ({"text": "x" * 11}, "the limit is 10"),
        ({"text": "hi", "voice": "robot"}, "Unknown voice"),
        ({"text": "hi", "format": "midi"}, "Unknown format"),
    ):
        refused = client.post("/api/v1/audio/speech", payload, content_type="application/json")
        assert refused.status_code == 400 and words in refused.json()["error"]["message"]
    assert SpeechClip.objects.count() == 1


def test_speech_page_plays_and_downloads(ears: LLMSetup, alice, alice_client: Client) -> None:
    response = alice_client.post("/audio/speech", {"text": "Read this aloud.", "voice": "alloy", "format": "mp3"})
    clip = SpeechClip.objects.get(owner=alice)
    assert response["Location"].endswith(f"#clip-{clip.pk}")
    page = alice_client.get("/audio/").content.decode()
    assert f'src="/audio/clips/{clip.pk}/audio"' in page
    audio = alice_client.get(f"/audio/clips/{clip.pk}/audio?download=1")
    assert audio["Content-Type"] == "audio/wav" and "attachment" in audio["Content-Disposition"]
    assert audio["X-Content-Type-Options"] == "nosniff"


def test_a_voice_turn_lands_in_the_conversation_with_a_spoken_answer(
    ears: LLMSetup, alice, alice_client: Client
) -> None:
    conversation = Conversation.objects.create(owner=alice, model_group="talker")
    response = api(alice).post(
        "/api/v1/audio/conversation",
        {"file": SimpleUploadedFile("turn.wav", wav_bytes(1.0)), "conversation_id": conversation.pk},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["transcript"] == ears.fake.transcript and body["answer"] == ears.fake.reply
    assert body["audio_url"].endswith("/audio")
    turns = [(m.role, m.content) for m in Message.objects.filter(conversation=conversation)]
    assert turns == [("user", ears.fake.transcript), ("assistant", ears.fake.reply)]
    assert alice_client.get(body["audio_url"].split("testserver", 1)[1]).status_code == 200


def test_another_users_audio_is_a_404(ears: LLMSetup, alice, bob, bob_client: Client) -> None:
    record = services.start_transcription(alice, SimpleUploadedFile("mine.wav", wav_bytes(1.0)))
    clip = services.speak(alice, "private words", response_format="wav")
    conversation = Conversation.objects.create(owner=alice, model_group="talker")
    for url in (
        f"/audio/transcriptions/{record.pk}/",
        f"/audio/transcriptions/{record.pk}/audio",
        f"/audio/transcriptions/{record.pk}/transcript.txt",
        f"/audio/clips/{clip.pk}/audio",
        f"/audio/voice/{conversation.pk}/",
    ):
        assert bob_client.get(url).status_code == 404, url
    assert (
        bob_client.post(
            f"/audio/voice/{conversation.pk}/turn", {"file": SimpleUploadedFile("x.wav", wav_bytes(1.0))}
        ).status_code
        == 404
    )
    bob_api = api(bob)
    assert bob_api.get(f"/api/v1/audio/transcriptions/{record.pk}").status_code == 404
    stolen = bob_api.post(
        "/api/v1/audio/conversation",
        {"file": SimpleUploadedFile("x.wav", wav_bytes(1.0)), "conversation_id": conversation.pk},
    )
    assert stolen.status_code == 404
    assert not Message.objects.filter(conversation=conversation).exists()


def test_subtitle_timestamps() -> None:
    segments = [{"start": 0.0, "end": 1.5, "text": "one"}, {"start": 3661.25, "end": 3662.0, "text": "two"}]
    assert (
        services.to_srt(segments) == "1\n00:00:00,000 --> 00:00:01,500\none\n\n2\n01:01:01,250 --> 01:01:02,000\ntwo\n"
    )
    assert "01:01:01.250 --> 01:01:02.000\ntwo" in services.to_vtt(segments)


def test_voice_page_in_a_browser_with_a_fake_microphone(
    llm: LLMSetup, alice, asgi_server: AsgiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chromium records a spoken question from a fake microphone; the local engines transcribe it
    and speak the (fake provider's) answer, which the page plays."""
    from playwright.sync_api import sync_playwright

    from tests.conftest import CHROMIUM, CHROMIUM_ARGS
    from tests.test_chat_browser import log_in

    call_command("seed_local_models", stdout=StringIO())
    llm.deployment("talker")
    llm.fake.reply = "Paris is the capital of France."
    gateway.rebuild_now()
    conversation = Conversation.objects.create(owner=alice, model_group="talker")
    question, _ = local_engines.tts_engine.get().speak("What is the capital of France?")
    with wave.open(io.BytesIO(question)) as clip:
        rate, frames = clip.getframerate(), clip.readframes(clip.getnframes())
    microphone = tmp_path / "question.wav"
    with wave.open(str(microphone), "wb") as out:  # the question, then a second of silence
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames + b"\0\0" * rate)

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # see tests/test_chat_browser.py
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                *CHROMIUM_ARGS,
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={microphone}",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        page = browser.new_page()
        log_in(page, asgi_server, "alice")
        page.goto(f"{asgi_server.url}/audio/voice/{conversation.pk}/")
        page.click("#record")
        page.wait_for_function("() => document.getElementById('voice-status').textContent.startsWith('Listening')")
        time.sleep(len(frames) / 2 / rate + 0.8)
        page.click("#stop")
        page.wait_for_selector("#turns li.assistant", timeout=60000)
        page.wait_for_function("() => document.getElementById('answer-audio').currentTime > 0", timeout=30000)
        heard = page.inner_text("#turns li.user")
        browser.close()
    assert "capital" in heard.lower() and "france" in heard.lower(), heard
    turns = [(m.role, m.content) for m in Message.objects.filter(conversation=conversation)]
    assert turns[1] == ("assistant", "Paris is the capital of France.")
    assert SpeechClip.objects.filter(owner=alice, provider="local").exists()
