"""Import and export of the provider configuration as YAML.

Two formats are read. The original design's ``config/providers.yaml``::

    providers:
      openai:
        models:
          - model_name: gpt-4
            litellm_params: {model: openai/gpt-4, api_key: "${OPENAI_API_KEY}"}
            tpm: 300000
            rpm: 5000
      embeddings:            # a plain list of models, not {models: [...]}; mode inferred
        - model_name: text-embedding-3-small
          litellm_params: {model: openai/text-embedding-3-small, api_key: "${OPENAI_API_KEY}"}
      rerankers: [...]

and our fuller one, which adds per provider ``kind``, ``api_base``, ``api_key``, ``extra_params``,
``enabled``; per model ``mode``, ``prices``, ``context_window``, ``max_output_tokens``, ``weight``,
``enabled``, ``probe_enabled``; and top-level ``fallbacks`` (by kind), ``router_settings``, and the
``embeddings`` / ``rerankers`` / ``transcribers`` / ``speakers`` lists. ``${VAR}`` is expanded
from the environment everywhere. Importing is idempotent, runs in one transaction, and never
clears a stored key (an unset variable leaves the key as it is).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction

from .config import acting_as
from .models import (
    EXTRA_PARAM_NAMES,
    RETRY_POLICY_FIELDS,
    Deployment,
    DeploymentMode,
    FallbackKind,
    FallbackRule,
    Provider,
    ProviderKind,
    RouterSettings,
)

ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Plain lists of models and the mode they hold.
MODEL_LISTS = {
    "embeddings": DeploymentMode.EMBEDDING,
    "rerankers": DeploymentMode.RERANK,
    "transcribers": DeploymentMode.TRANSCRIPTION,
    "speakers": DeploymentMode.SPEECH,
}

# LiteLLM model prefixes and the provider kind they belong to.
PREFIX_KINDS = {
    "openai": ProviderKind.OPENAI,
    "text-completion-openai": ProviderKind.OPENAI,
    "anthropic": ProviderKind.ANTHROPIC,
    "gemini": ProviderKind.GEMINI,
    "vertex_ai": ProviderKind.VERTEX_AI,
    "vertex_ai_beta": ProviderKind.VERTEX_AI,
    "azure": ProviderKind.AZURE,
    "azure_ai": ProviderKind.AZURE,
    "cohere": ProviderKind.COHERE,
    "cohere_chat": ProviderKind.COHERE,
    "mistral": ProviderKind.MISTRAL,
    "groq": ProviderKind.GROQ,
    "ollama": ProviderKind.OLLAMA,
    "ollama_chat": ProviderKind.OLLAMA,
    "local": ProviderKind.LOCAL,
}

PRICE_FIELDS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "input_cost_per_second",
    "output_cost_per_character",
    "cost_per_query",
)
ROUTER_FIELDS = (
    "routing_strategy",
    "num_retries",
    "retry_policy",
    "timeout",
    "stream_timeout",
    "allowed_fails",
    "cooldown_time",
)
FALLBACK_KEYS = {
    "fallbacks": FallbackKind.GENERAL,
    "context_window_fallbacks": FallbackKind.CONTEXT_WINDOW,
    "content_policy_fallbacks": FallbackKind.CONTENT_POLICY,
}


class ImportErrorMessage(Exception):
    """The file cannot be imported; the message says where and why."""


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)


def expand(value: Any, warnings: list[str], where: str) -> Any:
    """``${VAR}`` replaced from the environment, recursively; unset variables become empty."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                warnings.append(f"{where}: ${{{name}}} is not set")
            return os.environ.get(name, "")

        return ENV_VAR.sub(replace, value)
    if isinstance(value, list):
        return [expand(item, warnings, where) for item in value]
    if isinstance(value, dict):
        return {key: expand(item, warnings, f"{where}.{key}") for key, item in value.items()}
    return value


def _prefix(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else ""


def _kind_for(model: str, api_base: str) -> str:
    prefix = _prefix(model)
    kind = PREFIX_KINDS.get(prefix)
    if kind is None:
        return ProviderKind.OPENAI_COMPATIBLE
    if kind == ProviderKind.OPENAI and api_base and "api.openai.com" not in api_base:
        return ProviderKind.OPENAI_COMPATIBLE
    return kind


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:64] or "provider"


@dataclass
class _ProviderSpec:
    name: str
    kind: str | None = None
    api_key: str = ""
    api_base: str = ""
    extra_params: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    models: list[dict[str, Any]] = field(default_factory=list)


def _as_mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ImportErrorMessage(f"{where} must be a mapping")
    return value


def _as_list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ImportErrorMessage(f"{where} must be a list")
    return value


def _split_params(spec: _ProviderSpec, model: dict[str, Any], where: str) -> dict[str, Any]:
    """Moves a model's provider-level parameters (key, base URL, extras) onto its provider."""
    params = dict(_as_mapping(model.get("litellm_params"), f"{where}.litellm_params"))
    litellm_model = params.pop("model", None)
    if not isinstance(litellm_model, str) or not litellm_model:
        raise ImportErrorMessage(f"{where}: litellm_params.model is required")
    api_key = str(params.pop("api_key", "") or "")
    api_base = str(params.pop("api_base", "") or params.pop("base_url", "") or "")
    for key, value, current in (("api_key", api_key, spec.api_key), ("api_base", api_base, spec.api_base)):
        if value and current and value != current:
            raise ImportErrorMessage(
                f"{where}: its {key} differs from another model of provider {spec.name!r}; "
                "put models with different credentials under different providers"
            )
    spec.api_key = spec.api_key or api_key
    spec.api_base = spec.api_base or api_base
    for key in ("rpm", "tpm"):
        if key in params and key not in model:
            model[key] = params.pop(key)
    unknown = sorted(set(params) - EXTRA_PARAM_NAMES)
    if unknown:
        raise ImportErrorMessage(
            f"{where}: unknown litellm_params {', '.join(unknown)} (allowed: {', '.join(sorted(EXTRA_PARAM_NAMES))})"
        )
    for key, value in params.items():
        if value in ("", None):
            continue
        if key in spec.extra_params and spec.extra_params[key] != value:
            raise ImportErrorMessage(f"{where}: {key} differs from another model of provider {spec.name!r}")
        spec.extra_params[key] = value
    return {**model, "_litellm_model": litellm_model}


def _parse(document: Any, warnings: list[str]) -> tuple[dict[str, _ProviderSpec], dict[str, Any]]:
    root = _as_mapping(expand(document, warnings, "file"), "the file")
    unknown = set(root) - {"providers", "fallbacks", "router_settings", *MODEL_LISTS, *FALLBACK_KEYS}
    if unknown:
        raise ImportErrorMessage(f"unknown top-level key(s): {', '.join(sorted(unknown))}")
    specs: dict[str, _ProviderSpec] = {}
    loose: list[tuple[dict[str, Any], str, str]] = []  # (model, mode, where) from plain lists
    for name, body in _as_mapping(root.get("providers"), "providers").items():
        where = f"providers.{name}"
        if name in MODEL_LISTS:
            for index, model in enumerate(_as_list(body, where)):
                loose.append((_as_mapping(model, f"{where}[{index}]"), str(MODEL_LISTS[name]), f"{where}[{index}]"))
            continue
        body = _as_mapping(body, where)
        spec = _ProviderSpec(name=_slug(str(name)))
        spec.kind = body.get("kind")
        if spec.kind is not None and spec.kind not in ProviderKind.values:
            raise ImportErrorMessage(f"{where}.kind: {spec.kind!r} is not one of {', '.join(ProviderKind.values)}")
        spec.api_key = str(body.get("api_key") or "")
        spec.api_base = str(body.get("api_base") or "")
        spec.extra_params = dict(_as_mapping(body.get("extra_params"), f"{where}.extra_params"))
        spec.enabled = bool(body.get("enabled", True))
        for index, model in enumerate(_as_list(body.get("models"), f"{where}.models")):
            model_where = f"{where}.models[{index}]"
            spec.models.append(_split_params(spec, dict(_as_mapping(model, model_where)), model_where))
        specs[spec.name] = spec
    for list_name, list_mode in MODEL_LISTS.items():
        for index, model in enumerate(_as_list(root.get(list_name), list_name)):
            loose.append((_as_mapping(model, f"{list_name}[{index}]"), str(list_mode), f"{list_name}[{index}]"))
    for model, mode, where in loose:
        params = _as_mapping(model.get("litellm_params"), f"{where}.litellm_params")
        litellm_model = str(params.get("model") or "")
        prefix = _prefix(litellm_model) or "openai"
        name = str(model.get("provider") or "") or _home_for(specs, prefix)
        spec = specs.setdefault(name, _ProviderSpec(name=name))
        entry = _split_params(spec, {k: v for k, v in model.items() if k != "provider"}, where)
        entry.setdefault("mode", mode)
        spec.models.append(entry)
    for spec in specs.values():
        if spec.kind is None:
            first = spec.models[0]["_litellm_model"] if spec.models else ""
            spec.kind = _kind_for(first, spec.api_base)
    return specs, root


def _home_for(specs: dict[str, _ProviderSpec], prefix: str) -> str:
    """The provider a loose model belongs to: one named like its prefix, else one of that kind."""
    if prefix in specs:
        return prefix
    kind = PREFIX_KINDS.get(prefix)
    for spec in specs.values():
        spec_kind = spec.kind or (_kind_for(spec.models[0]["_litellm_model"], spec.api_base) if spec.models else None)
        if kind is not None and spec_kind == kind:
            return spec.name
    existing = Provider.objects.filter(kind=kind).order_by("name").first() if kind else None
    return existing.name if existing else _slug(prefix)


def _decimal(value: Any, where: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ImportErrorMessage(f"{where}: {value!r} is not a number") from None
    if number < 0:
        raise ImportErrorMessage(f"{where}: a price cannot be negative")
    return number


def _save_if_changed(instance: Any, values: dict[str, Any], report: ImportReport, label: str) -> None:
    changed = instance.pk is None
    for name, value in values.items():
        if getattr(instance, name) != value:
            setattr(instance, name, value)
            changed = True
    if not changed:
        report.unchanged += 1
        return
    created = instance.pk is None
    try:
        instance.full_clean()
    except ValidationError as exc:
        raise ImportErrorMessage(f"{label}: {'; '.join(exc.messages)}") from None
    instance.save()
    (report.created if created else report.updated).append(label)


def import_config(text: str, *, actor: str = "import_providers") -> ImportReport:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ImportErrorMessage(f"not valid YAML: {exc}") from None
    report = ImportReport()
    specs, root = _parse(document, report.warnings)
    with transaction.atomic(), acting_as(label=actor):
        for spec in specs.values():
            _import_provider(spec, report)
        _import_fallbacks(root, report)
        if root.get("router_settings") is not None:
            _import_router_settings(_as_mapping(root["router_settings"], "router_settings"), report)
    return report


def _import_provider(spec: _ProviderSpec, report: ImportReport) -> None:
    provider = Provider.objects.filter(name=spec.name).first() or Provider(name=spec.name)
    values: dict[str, Any] = {
        "kind": spec.kind,
        "api_base": spec.api_base,
        "extra_params": spec.extra_params,
        "enabled": spec.enabled,
    }
    if spec.api_key and spec.api_key != provider.get_api_key():
        provider.set_api_key(spec.api_key)
        values["api_key_encrypted"] = provider.api_key_encrypted
        values["api_key_last4"] = provider.api_key_last4
    _save_if_changed(provider, values, report, f"provider {spec.name}")
    for index, model in enumerate(spec.models):
        where = f"providers.{spec.name}.models[{index}]"
        group = model.get("model_name")
        if not isinstance(group, str) or not group:
            raise ImportErrorMessage(f"{where}: model_name is required")
        litellm_model = model["_litellm_model"]
        mode = model.get("mode") or DeploymentMode.CHAT
        if mode not in DeploymentMode.values:
            raise ImportErrorMessage(f"{where}.mode: {mode!r} is not one of {', '.join(DeploymentMode.values)}")
        deployment = Deployment.objects.filter(
            model_group=group, litellm_model=litellm_model, provider=provider
        ).first() or Deployment(model_group=group, litellm_model=litellm_model, provider=provider)
        prices = _as_mapping(model.get("prices"), f"{where}.prices")
        unknown_prices = set(prices) - set(PRICE_FIELDS)
        if unknown_prices:
            raise ImportErrorMessage(f"{where}.prices: unknown {', '.join(sorted(unknown_prices))}")
        values = {
            "mode": mode,
            "rpm": model.get("rpm"),
            "tpm": model.get("tpm"),
            "context_window": model.get("context_window"),
            "max_output_tokens": model.get("max_output_tokens"),
            "weight": int(model.get("weight", 1)),
            "enabled": bool(model.get("enabled", True)),
            "probe_enabled": model.get("probe_enabled"),
        }
        for name in PRICE_FIELDS:
            values[name] = _decimal(prices.get(name, 0), f"{where}.prices.{name}")
        _save_if_changed(deployment, values, report, f"deployment {group} ({spec.name}:{litellm_model})")


def _fallback_entries(value: Any, where: str) -> list[tuple[str, list[str]]]:
    """``[{group: [a, b]}, ...]`` or ``{group: [a, b]}`` as (group, groups) pairs."""
    items = value if isinstance(value, list) else [value] if isinstance(value, dict) else None
    if items is None:
        raise ImportErrorMessage(f"{where} must be a list of {{group: [fallback groups]}}")
    entries = []
    for item in items:
        for group, targets in _as_mapping(item, where).items():
            targets = [targets] if isinstance(targets, str) else _as_list(targets, f"{where}.{group}")
            entries.append((str(group), [str(target) for target in targets]))
    return entries


def _import_fallbacks(root: dict[str, Any], report: ImportReport) -> None:
    wanted: list[tuple[str, str, list[str]]] = []
    fallbacks = root.get("fallbacks")
    if isinstance(fallbacks, dict) and set(fallbacks) <= set(FallbackKind.values):
        for kind, entries in fallbacks.items():
            wanted += [(kind, group, targets) for group, targets in _fallback_entries(entries, f"fallbacks.{kind}")]
    elif fallbacks is not None:
        wanted += [(FallbackKind.GENERAL, g, t) for g, t in _fallback_entries(fallbacks, "fallbacks")]
    for key, kind in FALLBACK_KEYS.items():
        if key != "fallbacks" and root.get(key) is not None:
            wanted += [(kind, group, targets) for group, targets in _fallback_entries(root[key], key)]
    for kind, group, targets in wanted:
        rule = FallbackRule.objects.filter(model_group=group, kind=kind).first() or FallbackRule(
            model_group=group, kind=kind
        )
        _save_if_changed(rule, {"fallback_groups": targets}, report, f"{kind} fallback of {group}")


def _import_router_settings(values: dict[str, Any], report: ImportReport) -> None:
    unknown = set(values) - set(ROUTER_FIELDS)
    if unknown:
        raise ImportErrorMessage(f"router_settings: unknown {', '.join(sorted(unknown))}")
    policy = values.get("retry_policy")
    if policy is not None and not set(_as_mapping(policy, "router_settings.retry_policy")) <= set(RETRY_POLICY_FIELDS):
        raise ImportErrorMessage(f"router_settings.retry_policy: known keys are {', '.join(RETRY_POLICY_FIELDS)}")
    _save_if_changed(RouterSettings.load(), values, report, "router settings")


def export_config() -> str:
    """The whole configuration in the fuller format. Keys are never written: a provider with a key
    gets an ``${NAME_API_KEY}`` reference to fill from the environment on import."""
    providers: dict[str, Any] = {}
    for provider in Provider.objects.prefetch_related("deployments").order_by("name"):
        body: dict[str, Any] = {"kind": provider.kind, "enabled": provider.enabled}
        if provider.has_api_key:
            body["api_key"] = "${" + re.sub(r"[^A-Z0-9]+", "_", provider.name.upper()) + "_API_KEY}"
        if provider.api_base:
            body["api_base"] = provider.api_base
        if provider.extra_params:
            body["extra_params"] = provider.extra_params
        models = []
        for deployment in provider.deployments.order_by("model_group", "id"):
            model: dict[str, Any] = {
                "model_name": deployment.model_group,
                "litellm_params": {"model": deployment.litellm_model},
                "mode": deployment.mode,
            }
            for name in ("rpm", "tpm", "context_window", "max_output_tokens", "probe_enabled"):
                if getattr(deployment, name) is not None:
                    model[name] = getattr(deployment, name)
            if deployment.weight != 1:
                model["weight"] = deployment.weight
            if not deployment.enabled:
                model["enabled"] = False
            prices = {
                name: format(getattr(deployment, name).normalize(), "f")
                for name in PRICE_FIELDS
                if getattr(deployment, name)
            }
            if prices:
                model["prices"] = prices
            models.append(model)
        body["models"] = models
        providers[provider.name] = body
    fallbacks: dict[str, list[dict[str, list[str]]]] = {}
    for rule in FallbackRule.objects.order_by("kind", "model_group"):
        fallbacks.setdefault(rule.kind, []).append({rule.model_group: list(rule.fallback_groups)})
    router = RouterSettings.load()
    document: dict[str, Any] = {
        "providers": providers,
        "fallbacks": fallbacks,
        "router_settings": {name: getattr(router, name) for name in ROUTER_FIELDS},
    }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
