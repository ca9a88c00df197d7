"""API keys: hashed at rest, shown once, usable as Bearer tokens, revocable, per user."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from assistant_project.accounts.models import ApiKey, hash_key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_command_prints_a_key_that_is_stored_hashed(alice) -> None:
    out = io.StringIO()
    call_command("create_api_key", "alice", stdout=out)
    raw = out.getvalue().strip()
    assert raw.startswith("aap_")
    stored = ApiKey.objects.get(user=alice)
    assert stored.key_hash == hash_key(raw)
    assert raw not in {stored.key_hash, stored.prefix, stored.name}
    assert len(raw) > 40


def test_command_unknown_user(db: None) -> None:
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("create_api_key", "nobody")


def test_bearer_key_authenticates_api(alice, client: Client) -> None:
    _, raw = ApiKey.issue(alice, "laptop")
    response = client.get("/api/v1/me", headers=bearer(raw))
    assert response.status_code == 200
    assert response.json() == {"username": "alice", "is_staff": False, "api_key": "laptop"}
    assert ApiKey.objects.get(user=alice).last_used_at is not None


@pytest.mark.parametrize("header", ["Bearer aap_wrong", "Bearer", "Bearer a b"])
def test_bad_keys_are_401_with_json_error(db: None, client: Client, header: str) -> None:
    response = client.get("/api/v1/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_no_credentials_is_401(db: None, client: Client) -> None:
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json() == {
        "error": {"type": "authentication_error", "message": "Authentication credentials were not provided."}
    }


def test_revoked_and_expired_keys_fail(alice, client: Client) -> None:
    revoked, revoked_raw = ApiKey.issue(alice, "old")
    revoked.revoke()
    expired, expired_raw = ApiKey.issue(alice, "temp")
    expired.expires_at = timezone.now() - dt.timedelta(minutes=1)
    expired.save()
    assert client.get("/api/v1/me", headers=bearer(revoked_raw)).status_code == 401
    assert client.get("/api/v1/me", headers=bearer(expired_raw)).status_code == 401


def test_inactive_user_key_fails(alice, client: Client) -> None:
    _, raw = ApiKey.issue(alice, "k")
    alice.is_active = False
    alice.save()
    assert client.get("/api/v1/me", headers=bearer(raw)).status_code == 401


def test_page_creates_key_shown_once_and_revokes(alice_client: Client, alice) -> None:
    response = alice_client.post("/accounts/api-keys/", {"name": "ci"})
    assert response.status_code == 200
    raw = response.context["new_key"]
    assert raw in response.content.decode()
    key = ApiKey.objects.get(user=alice, name="ci")
    assert key.key_hash == hash_key(raw)
    # Shown only once: the list page afterwards holds the prefix, never the key.
    listing = alice_client.get("/accounts/api-keys/").content.decode()
    assert raw not in listing
    assert key.prefix in listing
    assert alice_client.post(f"/accounts/api-keys/{key.pk}/revoke/").status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert Client().get("/api/v1/me", headers=bearer(raw)).status_code == 401


def test_page_rejects_blank_name(alice_client: Client, alice) -> None:
    response = alice_client.post("/accounts/api-keys/", {"name": "  "})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not ApiKey.objects.filter(user=alice).exists()


def test_other_users_key_cannot_be_revoked_or_seen(alice, bob_client: Client) -> None:
    key, _ = ApiKey.issue(alice, "alice-only")
    assert bob_client.post(f"/accounts/api-keys/{key.pk}/revoke/").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None
    assert "alice-only" not in bob_client.get("/accounts/api-keys/").content.decode()


def test_keys_page_requires_login(client: Client, db: None) -> None:
    response = client.get("/accounts/api-keys/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
