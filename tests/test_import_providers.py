"""`manage.py import_providers` reads the original design's providers.yaml and our fuller format,
idempotently; `export_providers` writes the fuller format without keys."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from providers.models import AuditLogEntry, Deployment, FallbackRule, Provider, RouterSettings

pytestmark = pytest.mark.django_db

SEED = Path(__file__).parent / "data" / "providers.yaml"

FULLER = """
providers:
  fake:
    kind: openai_compatible
    api_base: http://127.0.0.1:9999/v1
    api_key: ${FAKE_KEY}
    models:
      - model_name: primary
        litellm_params: {model: openai/primary-model}
        rpm: 60
        prices: {input_cost_per_token: "0.000001", output_cost_per_token: "0.000002"}
        context_window: 4096
        max_output_tokens: 512
      - model_name: big
        litellm_params: {model: openai/big-model}
        context_window: 128000
        weight: 3
      - model_name: ears
        litellm_params: {model: openai/whisper-1}
        mode: transcription
        prices: {input_cost_per_second: "0.0001"}
        probe_enabled: true
embeddings:
  - model_name: vectors
    provider: fake
    litellm_params: {model: openai/embedder}
fallbacks:
  general:
    - {primary: [big]}
  context_window:
    - {primary: [big]}
router_settings:
  routing_strategy: latency-based-routing
  num_retries: 2
  retry_policy: {RateLimitErrorRetries: 3}
  timeout: 30
  cooldown_time: 10
"""


def run_import(path: Path) -> str:
    out = StringIO()
    call_command("import_providers", str(path), stdout=out, stderr=out)
    return out.getvalue()


@pytest.fixture
def seed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-from-env-0001")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env-0002")
    monkeypatch.setenv("COHERE_API_KEY", "co-from-env-0003")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-project")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "us-central1")


def test_the_original_design_file_imports_as_is(seed_env: None) -> None:
    output = run_import(SEED)

    kinds = dict(Provider.objects.values_list("name", "kind"))
    assert kinds == {"openai": "openai", "anthropic": "anthropic", "google": "vertex_ai", "cohere": "cohere"}
    openai = Provider.objects.get(name="openai")
    assert openai.get_api_key() == "sk-openai-from-env-0001"
    assert Provider.objects.get(name="cohere").get_api_key() == "co-from-env-0003"
    assert Provider.objects.get(name="google").extra_params == {
        "vertex_project": "my-project",
        "vertex_location": "us-central1",
    }
    gpt4 = Deployment.objects.get(model_group="gpt-4")
    assert (gpt4.litellm_model, gpt4.provider, gpt4.mode, gpt4.tpm, gpt4.rpm) == (
        "openai/gpt-4",
        openai,
        "chat",
        300000,
        5000,
    )
    # The plain `embeddings` and `rerankers` lists under `providers:` get their mode and provider.
    modes = {d.model_group: (d.mode, d.provider.name) for d in Deployment.objects.select_related("provider")}
    assert modes["text-embedding-3-small"] == ("embedding", "openai")
    assert modes["embed-english-v3.0"] == ("embedding", "cohere")
    assert modes["rerank-english-v3.0"] == ("rerank", "cohere")
    assert Deployment.objects.count() == 10
    assert "created" in output


def test_importing_twice_changes_nothing(seed_env: None) -> None:
    run_import(SEED)
    before = (AuditLogEntry.objects.count(), list(Provider.objects.values_list("api_key_encrypted", flat=True)))

    output = run_import(SEED)

    assert output.strip().endswith("0 created, 0 updated, 14 unchanged")
    assert (AuditLogEntry.objects.count(), list(Provider.objects.values_list("api_key_encrypted", flat=True))) == before


def test_an_unset_variable_warns_and_never_clears_a_stored_key(seed_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    run_import(SEED)
    monkeypatch.delenv("OPENAI_API_KEY")
    output = run_import(SEED)
    assert "${OPENAI_API_KEY} is not set" in output
    assert Provider.objects.get(name="openai").get_api_key() == "sk-openai-from-env-0001"


def test_the_fuller_format_round_trips_through_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "sk-fake-key-9876")
    source = tmp_path / "fuller.yaml"
    source.write_text(FULLER)
    run_import(source)

    primary = Deployment.objects.get(model_group="primary")
    assert primary.input_cost_per_token == Decimal("0.000001") and primary.context_window == 4096
    assert Deployment.objects.get(model_group="ears").mode == "transcription"
    assert Deployment.objects.get(model_group="ears").probe_enabled is True
    assert Deployment.objects.get(model_group="vectors").mode == "embedding"
    assert {(r.kind, r.model_group, tuple(r.fallback_groups)) for r in FallbackRule.objects.all()} == {
        ("general", "primary", ("big",)),
        ("context_window", "primary", ("big",)),
    }
    router = RouterSettings.load()
    assert (router.routing_strategy, router.num_retries, router.timeout) == ("latency-based-routing", 2, 30)
    assert router.retry_policy == {"RateLimitErrorRetries": 3}

    exported = StringIO()
    call_command("export_providers", stdout=exported)
    text = exported.getvalue()
    assert "sk-fake-key-9876" not in text and "${FAKE_API_KEY}" in text

    # Import the export into an empty configuration: the same configuration comes back.
    FallbackRule.objects.all().delete()
    Deployment.objects.all().delete()
    Provider.objects.all().delete()
    RouterSettings.objects.all().delete()
    again = tmp_path / "exported.yaml"
    again.write_text(text)
    monkeypatch.setenv("FAKE_API_KEY", "sk-fake-key-9876")
    run_import(again)
    second = StringIO()
    call_command("export_providers", stdout=second)
    assert second.getvalue() == text
    assert Provider.objects.get(name="fake").get_api_key() == "sk-fake-key-9876"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("providers: [", "not valid YAML"),
        (
            "providers:\n  x:\n    models:\n      - model_name: a\n        litellm_params: {}\n",
            "litellm_params.model is required",
        ),
        (
            "providers:\n  x:\n    models:\n      - model_name: a\n"
            "        litellm_params: {model: openai/a, evil: 1}\n",
            "unknown litellm_params evil",
        ),
        (
            "providers:\n  x:\n    models:\n      - {model_name: a, litellm_params: {model: openai/a}}\n"
            "      - {model_name: b, litellm_params: {model: openai/b}}\n"
            "fallbacks: [{a: [b]}, {b: [a]}]\n",
            "fallback cycle",
        ),
        ("wat: 1\n", "unknown top-level key(s): wat"),
    ],
)
def test_bad_files_are_refused_with_a_clear_message_and_nothing_is_imported(
    tmp_path: Path, document: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(document)
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_import(path)
    assert not Provider.objects.exists() and not Deployment.objects.exists()


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        run_import(tmp_path / "nope.yaml")
