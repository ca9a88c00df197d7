"""One structured JSON line per request, with request id, user, route, status and duration, and
never the text a user sent."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client


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
