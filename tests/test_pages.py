"""Login, logout, the base layout, navigation, static files and htmx served locally."""

from __future__ import annotations

import re

from django.test import Client

from tests.factories import PASSWORD


def test_home_requires_login(client: Client, db: None) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_login_and_logout(client: Client, alice) -> None:
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    bad = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert "did not match" in bad.content.decode()
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 200
    assert "Welcome, alice" in home.content.decode()
    logout = client.post("/accounts/logout/")
    assert logout.status_code == 302
    assert client.get("/").status_code == 302


def test_admin_link_only_for_staff(alice_client: Client, charlie_client: Client) -> None:
    assert 'href="/admin/"' not in alice_client.get("/").content.decode()
    assert 'href="/admin/"' in charlie_client.get("/").content.decode()
    assert alice_client.get("/admin/").status_code == 302  # to the admin login
    assert charlie_client.get("/admin/").status_code == 200


def test_htmx_is_served_locally_with_csrf_header(alice_client: Client) -> None:
    html = alice_client.get("/").content.decode()
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', html)
    assert scripts, "htmx should be included"
    assert all(src.startswith("/static/") for src in scripts), scripts
    assert any("htmx" in src for src in scripts)
    match = re.search(r"<body hx-headers='\{\"X-CSRFToken\": \"([^\"]+)\"\}'>", html)
    assert match
    assert len(match.group(1)) >= 32


def test_static_files_are_served_by_the_app(alice_client: Client, settings) -> None:
    # WhiteNoise serves app static files; in tests it finds them without collectstatic.
    html = alice_client.get("/").content.decode()
    css = re.search(r'href="(/static/css/app[^"]*\.css)"', html)
    assert css
    response = alice_client.get(css.group(1))
    assert response.status_code == 200
    body = response.getvalue()
    assert b"--accent" in body
