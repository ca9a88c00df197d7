"""Every API error, whatever raised it, has the shape {"error": {"type": ..., "message": ...}}."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client


def assert_error_shape(body: dict[str, Any], error_type: str) -> None:
    assert set(body) == {"error"}
    assert body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]


def test_unknown_api_route_is_json_404(alice_client: Client) -> None:
    response = alice_client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert_error_shape(response.json(), "not_found")


def test_unknown_page_is_html_404(alice_client: Client) -> None:
    response = alice_client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.urls("tests.urls_errors")
def test_wrong_method_is_json_405(client: Client, db: None) -> None:
    response = client.get("/api/v1/test/post-only")
    assert response.status_code == 405
    assert_error_shape(response.json(), "method_not_allowed")


@pytest.mark.urls("tests.urls_errors")
def test_crash_is_json_500_without_internals(client: Client, db: None) -> None:
    response = client.get("/api/v1/test/crash")
    assert response.status_code == 500
    body = response.json()
    assert_error_shape(body, "server_error")
    assert "boom" not in response.content.decode()


def test_csrf_is_enforced_for_session_api_posts(alice) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/accounts/api-keys/", {"name": "x"})
    assert response.status_code == 403
