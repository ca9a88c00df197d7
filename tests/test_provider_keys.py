"""Provider keys: encrypted at rest with ENCRYPTION_KEYS (not SECRET_KEY), rotatable, write-only in
the admin, and never in logs, exceptions, stored rows or exports."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client

from providers import crypto
from providers.models import AuditLogEntry, Provider
from tests.conftest import ROOT, database_url_for_tests
from tests.llm import PLANTED_KEY, LLMSetup

pytestmark = pytest.mark.django_db


def stored_column(provider: Provider) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key_encrypted FROM providers_provider WHERE id = %s", [provider.pk])
        return str(cursor.fetchone()[0])


def test_keys_are_encrypted_at_rest_with_the_encryption_keys(settings) -> None:
    provider = Provider(name="openai", kind="openai")
    provider.set_api_key("sk-live-abcdefghijklmnop1234")
    provider.save()

    raw = stored_column(provider)
    assert "sk-live" not in raw and "1234" not in raw
    assert Fernet(settings.ENCRYPTION_KEYS[0].encode()).decrypt(raw.encode()) == b"sk-live-abcdefghijklmnop1234"
    assert Provider.objects.get(pk=provider.pk).get_api_key() == "sk-live-abcdefghijklmnop1234"
    assert provider.key_hint == "set (…1234)"
    assert settings.SECRET_KEY not in settings.ENCRYPTION_KEYS


def test_rotation_accepts_two_keys_and_the_command_re_encrypts_every_row(settings) -> None:
    old_key = settings.ENCRYPTION_KEYS[0]
    providers = []
    for index in range(3):
        provider = Provider(name=f"p{index}", kind="openai")
        provider.set_api_key(f"sk-secret-number-{index}")
        provider.save()
        providers.append(provider)
    empty = Provider.objects.create(name="no-key", kind="ollama")

    new_key = Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [new_key, old_key]
    # While both keys are configured, rows written with the old key still decrypt.
    assert Provider.objects.get(pk=providers[0].pk).get_api_key() == "sk-secret-number-0"

    out = StringIO()
    call_command("rotate_provider_keys", stdout=out)
    assert "re-encrypted 3 provider key(s)" in out.getvalue()
    assert AuditLogEntry.objects.filter(action="rotated", actor_label="rotate_provider_keys").exists()

    settings.ENCRYPTION_KEYS = [new_key]  # the old key is retired
    for index, provider in enumerate(providers):
        assert Provider.objects.get(pk=provider.pk).get_api_key() == f"sk-secret-number-{index}"
    assert Provider.objects.get(pk=empty.pk).get_api_key() == ""

    settings.ENCRYPTION_KEYS = [old_key]  # and the old key alone no longer reads them
    with pytest.raises(crypto.KeyDecryptionError):
        Provider.objects.get(pk=providers[0].pk).get_api_key()
    with pytest.raises(CommandError, match="cannot be decrypted"):
        call_command("rotate_provider_keys", stdout=StringIO())


def test_admin_never_renders_a_key_back(charlie_client: Client) -> None:
    response = charlie_client.post(
        "/admin/providers/provider/add/",
        {
            "name": "openai",
            "kind": "openai",
            "enabled": "on",
            "api_key": PLANTED_KEY,
            "api_base": "",
            "extra_params": "{}",
            "deployments-TOTAL_FORMS": "0",
            "deployments-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    provider = Provider.objects.get(name="openai")
    assert provider.get_api_key() == PLANTED_KEY

    for url in (
        f"/admin/providers/provider/{provider.pk}/change/",
        "/admin/providers/provider/",
        "/admin/providers/auditlogentry/",
        f"/admin/providers/auditlogentry/{AuditLogEntry.objects.latest('id').pk}/change/",
    ):
        page = charlie_client.get(url).content.decode()
        assert PLANTED_KEY not in page, url
        assert provider.api_key_encrypted not in page, url
    change_page = charlie_client.get(f"/admin/providers/provider/{provider.pk}/change/").content.decode()
    assert f"set (…{PLANTED_KEY[-4:]})" in change_page
    assert 'type="password"' in change_page

    # Saving the form with the key field left blank keeps the key; the clear box removes it.
    form = {
        "name": "openai",
        "kind": "openai",
        "enabled": "on",
        "api_key": "",
        "api_base": "",
        "extra_params": "{}",
        "deployments-TOTAL_FORMS": "0",
        "deployments-INITIAL_FORMS": "0",
    }
    charlie_client.post(f"/admin/providers/provider/{provider.pk}/change/", form)
    assert Provider.objects.get(pk=provider.pk).get_api_key() == PLANTED_KEY
    charlie_client.post(f"/admin/providers/provider/{provider.pk}/change/", {**form, "clear_api_key": "on"})
    assert Provider.objects.get(pk=provider.pk).get_api_key() == ""
    changes = [entry.changes for entry in AuditLogEntry.objects.filter(object_type="provider")]
    assert {"from": None, "to": None} not in changes
    assert any(change.get("api_key_encrypted") == "API key cleared" for change in changes)


# Calls made in a separate process, logging at DEBUG, that make the provider echo the key back.
CALLS = """
import django, logging
django.setup()
from providers import gateway
ctx = gateway.CallContext(app="chat")
for group in ("echo", "broken", "fine"):
    try:
        print(gateway.chat(group, [{"role": "user", "content": "hi"}], context=ctx).text)
    except gateway.GatewayError as exc:
        print("error:", exc.kind, exc.message)
        logging.getLogger("test").exception("the call failed: %s", exc.__context__)
key = gateway._current_state().router.get_model_list()[0]["litellm_params"]["api_key"]
try:
    raise RuntimeError("upstream said: Incorrect API key provided: " + key)
except RuntimeError:
    logging.getLogger("test").exception("a failure that quotes the key")
print(gateway.embed("vectors", ["hello"], context=ctx).vectors[0][:2])
"""


@pytest.mark.slow
def test_a_planted_key_appears_in_no_log_row_page_or_export(
    llm: LLMSetup, charlie_client: Client, tmp_path: Path
) -> None:
    llm.deployment("echo", "echo-key")
    llm.deployment("broken", "error-500")
    llm.deployment("fine")
    llm.deployment("vectors", mode="embedding")

    env = {**os.environ, "DATABASE_URL": database_url_for_tests(), "LOG_LEVEL": "DEBUG"}
    done = subprocess.run(
        [sys.executable, "-c", CALLS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "error: provider_auth" in output and llm.fake.reply in output
    assert "Incorrect API key provided: [redacted]" in output  # the echo happened, and was scrubbed
    assert "a failure that quotes the key" in output
    assert PLANTED_KEY not in output
    assert PLANTED_KEY[4:] not in output  # nor the key without its prefix

    # Every stored row of every table.
    for model in apps.get_models():
        for row in model._default_manager.values_list():
            assert PLANTED_KEY not in repr(row), model.__name__

    # The admin pages and the export.
    for url in ("/admin/providers/provider/", "/admin/providers/deployment/", "/admin/providers/auditlogentry/"):
        assert PLANTED_KEY not in charlie_client.get(url).content.decode(), url
    out = StringIO()
    call_command("export_providers", stdout=out)
    assert PLANTED_KEY not in out.getvalue()
    assert "${FAKE_" in out.getvalue()
