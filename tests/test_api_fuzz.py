"""Schemathesis generates requests from /api/schema/ against the app under uvicorn (bounded examples,
fixed seed): no response is a server error, and every one matches the schema (status code, media
type, body)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from assistant_project.accounts.models import ApiKey
from audio.models import Transcription, TranscriptionStatus
from chat.models import Conversation, Message, MessageRole
from documents.models import Collection, Document, DocumentStatus
from tests.conftest import start_asgi_server
from tests.llm import LLMSetup

pytestmark = pytest.mark.slow

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
GROUPS = {
    "DOCUMENTS_EMBEDDING_GROUP": "vectors",
    "AUDIO_TRANSCRIPTION_GROUP": "ears",
    "AUDIO_SPEECH_GROUP": "voice",
}


def schemathesis(url: str, key: str, config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(config),
            "run",
            f"{url}/api/schema/?format=json",
            "--header",
            f"Authorization: Bearer {key}",
            "--checks",
            CHECKS,
            "--max-examples",
            "15",
            "--seed",
            "20261204",
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "2",
            "--request-timeout",
            "30",
            *extra,
        ],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(
    llm: LLMSetup, alice: Any, bob: Any, tmp_path: Path
) -> None:
    llm.deployment("chatty")
    llm.deployment("vectors", mode="embedding")
    llm.deployment("ears", mode="transcription")
    llm.deployment("voice", mode="speech")
    # Objects for the generated ids and names to hit: alice's (the caller) and bob's (never visible).
    ids: dict[str, int] = {}
    for owner in (bob, alice):
        conversation = Conversation.objects.create(owner=owner, model_group="chatty")
        Message.objects.create(conversation=conversation, role=MessageRole.USER, content="hello")
        collection = Collection.objects.create(owner=owner, name="notes", embedding_group="vectors")
        document = Document.objects.create(
            collection=collection,
            original_name="a.txt",
            kind="txt",
            size=5,
            sha256=f"{owner.pk:064d}",
            file="documents/a.txt",
            status=DocumentStatus.READY,
        )
        transcription = Transcription.objects.create(
            owner=owner, audio="audio/a.wav", original_name="a.wav", status=TranscriptionStatus.READY, text="hi"
        )
        ids = {"conversation_id": conversation.pk, "document_id": document.pk, "transcription_id": transcription.pk}
    _, key = ApiKey.issue(alice, "fuzz")
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[parameters]\n" + "".join(f"{name} = {value}\n" for name, value in ids.items()),
    )
    server = start_asgi_server(tmp_path, GROUPS)
    try:
        result = schemathesis(server.url, key, config)
    finally:
        server.stop()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    assert counts is not None, output[-3000:]
    assert int(counts[1]) == int(counts[2]) >= 19 * 10  # every operation exercised, every case passed
    assert "Server error" not in output
    assert "Traceback" not in server.log()


def test_schemathesis_run_fails_on_a_server_error(llm: LLMSetup, alice: Any, tmp_path: Path) -> None:
    """A control: with the speech group pointed at a failing deployment, the same run reports it."""
    llm.deployment("voice", "error-500", mode="speech")
    _, key = ApiKey.issue(alice, "fuzz")
    config = tmp_path / "schemathesis.toml"
    config.write_text("")
    server = start_asgi_server(tmp_path, {"AUDIO_SPEECH_GROUP": "voice"})
    try:
        result = schemathesis(server.url, key, config, "--include-path", "/api/v1/audio/speech")
    finally:
        server.stop()
    assert result.returncode != 0
    assert "Server error" in result.stdout + result.stderr
