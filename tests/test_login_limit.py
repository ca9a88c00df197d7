"""Sign-in is rate limited per account and per address, on the login page and the admin's."""

from __future__ import annotations

from django.test import Client

from tests.factories import PASSWORD


def attempt(client: Client, username: str, password: str, url: str = "/accounts/login/") -> tuple[int, str]:
    response = client.post(url, {"username": username, "password": password})
    return response.status_code, response.content.decode()


def test_an_account_is_locked_after_repeated_failures_even_with_the_right_password(
    client: Client, alice, settings
) -> None:
    settings.LOGIN_MAX_FAILURES = 3
    for _ in range(3):
        status, page = attempt(client, "alice", "wrong")
        assert status == 200 and "did not match" in page
    status, page = attempt(client, "alice", PASSWORD)
    assert status == 200 and "Too many failed sign-in attempts" in page
    assert client.get("/").status_code == 302, "not signed in"


def test_a_success_resets_the_account_counter(client: Client, alice, settings) -> None:
    settings.LOGIN_MAX_FAILURES = 3
    for _ in range(2):
        attempt(client, "alice", "wrong")
    assert attempt(client, "alice", PASSWORD)[0] == 302
    client.post("/accounts/logout/")
    for _ in range(2):
        attempt(client, "alice", "wrong")
    assert attempt(client, "alice", PASSWORD)[0] == 302


def test_one_address_trying_many_accounts_is_locked(client: Client, alice, bob, settings) -> None:
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 4
    for name in ("carol", "dave", "erin", "frank"):
        attempt(client, name, "guess")
    assert "Too many failed sign-in attempts" in attempt(client, "bob", PASSWORD)[1]
    other = Client(REMOTE_ADDR="10.1.2.3")
    assert attempt(other, "bob", PASSWORD)[0] == 302, "another address is not affected"


def test_the_admin_login_is_limited_too(client: Client, charlie, settings) -> None:
    settings.LOGIN_MAX_FAILURES = 2
    for _ in range(2):
        attempt(client, "charlie", "wrong", "/admin/login/")
    assert "Too many failed sign-in attempts" in attempt(client, "charlie", PASSWORD, "/admin/login/")[1]
