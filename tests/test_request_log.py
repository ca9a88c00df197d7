"""One structured JSON line per request, with request id, user, route, status and duration, and
never the text a user sent."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.test import Client

from assistant_project.accounts.models import ApiKey
from tests.conftest import start_asgi_server, start_worker
from tests.llm import PLANTED_KEY


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "assistant.requests"]


def test_each_request_logs_one_json_line_without_its_body(alice_client: Client, alice, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="assistant.requests"):
        response = alice_client.get("/chat/", HTTP_X_REQUEST_ID="abc123")
        alice_client.post("/chat/new", {"model": "nothing-here", "system_prompt": "my secret prompt text"})
    first, second = lines(caplog)
    assert response["X-Request-ID"] == "abc123"
    assert first == {
        "request_id": "abc123",
        "method": "GET",
        "route": "/chat/",
        "status": 200,
        "duration_ms": first["duration_ms"],
        "user_id": alice.pk,
        "streaming": False,
    }
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] > 0
    assert second["route"] == "/chat/new" and second["status"] == 400 and len(str(second["request_id"])) == 32
    assert all("secret prompt" not in r.getMessage() for r in caplog.records if r.name == "assistant.requests")


def test_anonymous_and_unknown_routes(client: Client, db: None, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="assistant.requests"):
        client.get("/no/such/page")
        client.get("/accounts/login/", HTTP_X_REQUEST_ID="not valid!")
    missing, login = lines(caplog)
    assert missing["route"] is None and missing["status"] == 404 and missing["user_id"] is None
    assert login["route"] == "/accounts/login/" and login["request_id"] != "not valid!"


# --- Whole processes at DEBUG: no message, answer, document text or key in any log line ----------

QUESTION = "Zebra-quartz question about the harbour lighthouse"
ANSWER = "Marmalade-falcon answer about the harbour lighthouse"
DOCUMENT = "Obsidian-walrus paragraph: the harbour lighthouse was built in 1871 by the guild."


def run_traffic(llm: Any, alice: Any, tmp_path: Path, extra_env: dict[str, str]) -> tuple[str, str, str]:
    """Chat (plain and streamed), a document ingested in a worker and queried, through a web server
    and a worker running at LOG_LEVEL=DEBUG; returns both logs and the user's API key."""
    llm.fake.reply = ANSWER
    llm.deployment("chatty")
    llm.deployment("vectors", mode="embedding")
    env = {"LOG_LEVEL": "DEBUG", "DOCUMENTS_EMBEDDING_GROUP": "vectors", **extra_env}
    _, key = ApiKey.issue(alice, "logs")
    headers = {"Authorization": f"Bearer {key}"}
    worker = start_worker(tmp_path, env)
    server = start_asgi_server(tmp_path, env)
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as api:
            conversation = api.post("/api/v1/chat/conversations", json={"model": "chatty"}).json()
            path = f"/api/v1/chat/conversations/{conversation['conversation_id']}/messages"
            assert api.post(path, json={"message": QUESTION}).json()["response"] == ANSWER
            assert ANSWER in api.post(f"{path}/stream", json={"message": QUESTION}).text
            upload = api.post(
                "/api/v1/documents/upload",
                files={"file": ("harbour.txt", DOCUMENT.encode())},
                data={"collection": "harbour"},
            ).json()
            deadline = time.monotonic() + 60
            while api.get(f"/api/v1/documents/{upload['document_id']}").json()["status"] != "ready":
                assert time.monotonic() < deadline, worker.log()[-2000:]
                time.sleep(0.2)
            answered = api.post("/api/v1/documents/query", json={"query": QUESTION, "collection": "harbour"})
            assert answered.json()["sources"][0]["content"] == DOCUMENT
    finally:
        server.stop()
        worker.stop()
    return server.log(), worker.log(), key


@pytest.mark.slow
def test_debug_logs_of_web_and_worker_hold_no_content_or_keys(llm: Any, alice: Any, tmp_path: Path) -> None:
    server_log, worker_log, key = run_traffic(llm, alice, tmp_path, {})
    assert '"level": "DEBUG"' in server_log + worker_log  # DEBUG lines were written
    for log in (server_log, worker_log):
        for secret in (QUESTION, ANSWER, DOCUMENT, "Obsidian-walrus", key, PLANTED_KEY):
            assert secret not in log
    requests = [json.loads(line) for line in server_log.splitlines() if line.startswith('{"request_id"')]
    assert {"/api/v1/chat/conversations/<int:conversation_id>/messages/stream", "/api/v1/documents/query"} <= {
        line["route"] for line in requests
    }
    assert all(line["user_id"] == alice.pk for line in requests if line["route"].startswith("/api/v1/chat"))


@pytest.mark.slow
def test_log_content_true_lets_payloads_into_debug_logs(llm: Any, alice: Any, tmp_path: Path) -> None:
    """The control, and the debug setting the rule names: with LOG_CONTENT=true the provider SDK's
    request dumps (prompts, document text) reach the DEBUG log."""
    server_log, worker_log, key = run_traffic(llm, alice, tmp_path, {"LOG_CONTENT": "true"})
    assert "Zebra-quartz" in server_log
    assert "Obsidian-walrus" in worker_log
    for log in (server_log, worker_log):  # keys stay out even so: the redaction filter scrubs them
        assert PLANTED_KEY not in log
        assert key not in log
