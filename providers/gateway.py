"""The one door for all LLM traffic.

Every chat, embedding, rerank, transcription and speech call of every app goes through the
functions at the bottom of this module. It is the only module that imports LiteLLM, and it does so
lazily, on the first call, never at Django start-up (the import costs several seconds).

The LiteLLM Router is built from the database (``providers.models``) and rebuilt when the
configuration version in Redis changes, so every web and worker process serves a change within
about a second, without a restart. Cooldowns live in Redis too, shared by all processes.

Callers name a model group and pass messages (or texts, audio...) and a few standard generation
parameters; nothing else from a request reaches LiteLLM, so no user can set a provider's api_base
or key. Each call returns what served it, what failed on the way, usage, cost and timings, and is
recorded in ``analytics.LLMCall``, one row per attempt, failed attempts and abandoned streams
included.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Generator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from . import config
from .models import (
    LITELLM_MODES,
    Deployment,
    DeploymentMode,
    FallbackKind,
    FallbackRule,
    ProviderKind,
    RouterSettings,
)
from .redaction import register_secrets, scrub

if TYPE_CHECKING:
    from analytics.models import LLMCall

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

CHECK_INTERVAL = 1.0  # seconds between looks at the configuration version
LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")

# Standard OpenAI generation parameters a caller may pass. Everything else is refused.
CHAT_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "logprobs",
        "top_logprobs",
        "n",
        "logit_bias",
        "user",
    }
)
EMBEDDING_PARAMS = frozenset({"dimensions", "encoding_format", "user"})
PROVIDER_PARAMS = frozenset(
    {
        "api_base",
        "base_url",
        "api_key",
        "api_version",
        "headers",
        "extra_headers",
        "custom_llm_provider",
        "organization",
        "timeout",
        "model_list",
        "metadata",
        "litellm_params",
        "mock_response",
    }
)

# Where each kind of provider's models live in LiteLLM, when the model string has no prefix.
KIND_PREFIX = {
    ProviderKind.OPENAI: "openai",
    ProviderKind.ANTHROPIC: "anthropic",
    ProviderKind.GEMINI: "gemini",
    ProviderKind.VERTEX_AI: "vertex_ai",
    ProviderKind.AZURE: "azure",
    ProviderKind.COHERE: "cohere",
    ProviderKind.MISTRAL: "mistral",
    ProviderKind.GROQ: "groq",
    ProviderKind.OLLAMA: "ollama",
    ProviderKind.OPENAI_COMPATIBLE: "openai",
    ProviderKind.LOCAL: "local",
}


# --- Errors -------------------------------------------------------------------------------------


class GatewayError(Exception):
    """A call that could not be served. ``kind`` is stable; ``status`` is the HTTP status to answer."""

    STATUS = {
        "unknown_model": 404,
        "wrong_mode": 400,
        "bad_request": 400,
        "context_window": 400,
        "content_policy": 400,
        "provider_auth": 502,
        "rate_limited": 429,
        "budget_exceeded": 429,
        "timeout": 504,
        "unavailable": 503,
        "stream_interrupted": 502,
    }

    def __init__(self, kind: str, message: str, *, outcome: CallOutcome | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.outcome = outcome

    @property
    def status(self) -> int:
        return self.STATUS.get(self.kind, 502)


class StreamInterrupted(GatewayError):
    """A stream that failed after text had arrived; ``partial_text`` holds what came."""

    def __init__(self, message: str, partial_text: str, outcome: CallOutcome) -> None:
        super().__init__("stream_interrupted", message, outcome=outcome)
        self.partial_text = partial_text


def _classify(exc: BaseException) -> str:
    import litellm

    if isinstance(exc, litellm.ContextWindowExceededError):
        return "context_window"
    if isinstance(exc, litellm.ContentPolicyViolationError):
        return "content_policy"
    if isinstance(exc, litellm.AuthenticationError):
        return "provider_auth"
    if isinstance(exc, litellm.RateLimitError):
        return "rate_limited"
    if isinstance(exc, litellm.Timeout):
        return "timeout"
    if isinstance(exc, litellm.BadRequestError):
        return "bad_request"
    return "unavailable"


_KIND_MESSAGES = {
    "context_window": "The conversation is longer than every available model's context window.",
    "content_policy": "The provider refused the request under its content policy.",
    "provider_auth": "The provider rejected the platform's credentials; an operator must fix the key.",
    "rate_limited": "Every deployment of this model is rate limited or cooling down; try again shortly.",
    "timeout": "The provider did not answer in time.",
    "bad_request": "The provider rejected the request as invalid.",
    "unavailable": "Every deployment of this model failed.",
}


# --- Results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentInfo:
    id: int
    model_group: str
    provider: str
    provider_kind: str
    model: str
    mode: str
    input_cost_per_token: Decimal
    output_cost_per_token: Decimal
    input_cost_per_second: Decimal
    output_cost_per_character: Decimal
    cost_per_query: Decimal
    context_window: int | None
    max_output_tokens: int | None

    @property
    def priced(self) -> bool:
        return any(
            price > 0
            for price in (
                self.input_cost_per_token,
                self.output_cost_per_token,
                self.input_cost_per_second,
                self.output_cost_per_character,
                self.cost_per_query,
            )
        )


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    audio_seconds: float = 0.0
    characters: int = 0
    queries: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Attempt:
    deployment_id: int | None
    model_group: str
    provider: str
    model: str
    status: str  # success / failure / abandoned
    error_type: str = ""
    error_message: str = ""
    latency_ms: float | None = None


@dataclass
class CallOutcome:
    trace_id: str
    requested_group: str
    call_type: str
    served_by: DeploymentInfo | None = None
    attempts: list[Attempt] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cost: Decimal = Decimal(0)
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    downgraded_from: str | None = None  # the group asked for, when the budget moved the call

    @property
    def fallbacks(self) -> list[str]:
        """Groups tried after the requested one, in order (the last one served, if any did)."""
        groups: list[str] = []
        for attempt in self.attempts:
            if attempt.model_group != self.requested_group and attempt.model_group not in groups:
                groups.append(attempt.model_group)
        return groups

    @property
    def retries(self) -> int:
        return max(0, len(self.attempts) - 1 - len(self.fallbacks))

    def summary(self) -> dict[str, Any]:
        served = self.served_by
        return {
            "trace_id": self.trace_id,
            "model_group": served.model_group if served else self.requested_group,
            "provider": served.provider if served else None,
            "model": served.model if served else None,
            "deployment_id": served.id if served else None,
            "attempts": len(self.attempts),
            "fallbacks": self.fallbacks,
            "usage": {
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
                "total_tokens": self.usage.total_tokens,
            },
            "cost": float(self.cost),
            "latency_ms": round(self.latency_ms, 1),
            "ttft_ms": round(self.ttft_ms, 1) if self.ttft_ms is not None else None,
            "downgraded_from": self.downgraded_from,
        }


@dataclass
class ChatResult:
    text: str
    finish_reason: str | None
    outcome: CallOutcome
    tool_calls: list[dict[str, Any]] | None = None
    raw: Any = None


@dataclass
class EmbeddingResult:
    vectors: list[list[float]]
    outcome: CallOutcome


@dataclass
class RerankResult:
    results: list[tuple[int, float]]  # (index into documents, relevance score), best first
    outcome: CallOutcome


@dataclass
class TranscriptionResult:
    text: str
    language: str | None
    duration: float | None
    segments: list[dict[str, Any]]
    outcome: CallOutcome


@dataclass
class SpeechResult:
    audio: bytes
    content_type: str
    outcome: CallOutcome


@dataclass(frozen=True)
class CallContext:
    """Who is calling, from which part of the platform (recorded with the call)."""

    app: str
    user_id: int | None = None


CALL_TYPES: dict[str, str] = {
    DeploymentMode.CHAT: "chat",
    DeploymentMode.EMBEDDING: "embedding",
    DeploymentMode.RERANK: "rerank",
    DeploymentMode.TRANSCRIPTION: "transcription",
    DeploymentMode.SPEECH: "speech",
}


# --- LiteLLM and the Router ---------------------------------------------------------------------

_import_lock = threading.Lock()
_litellm_ready = False
_build_lock = threading.Lock()


class _FailureCollector:
    """Collects LiteLLM's per-attempt failure events, keyed by our trace id, until the call ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, list[dict[str, Any]]] = {}

    def open(self, trace_id: str) -> None:
        with self._lock:
            self._events[trace_id] = []

    def add(self, trace_id: str, event: dict[str, Any]) -> None:
        with self._lock:
            if trace_id in self._events:
                self._events[trace_id].append(event)

    def take(self, trace_id: str, *, close: bool = True) -> list[dict[str, Any]]:
        with self._lock:
            events = self._events.pop(trace_id, []) if close else list(self._events.get(trace_id, []))
            if not close and trace_id in self._events:
                self._events[trace_id] = []
        return events


_failures = _FailureCollector()


def _import_litellm() -> Any:
    """Import and configure LiteLLM once per process (thread-safe)."""
    global _litellm_ready
    if _litellm_ready:
        import litellm

        return litellm
    with _import_lock:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm
        from litellm.integrations.custom_logger import CustomLogger

        if not _litellm_ready:
            litellm.suppress_debug_info = True
            litellm.telemetry = False
            for name in LITELLM_LOGGERS:
                lite_logger = logging.getLogger(name)
                for handler in list(lite_logger.handlers):
                    lite_logger.removeHandler(handler)
                lite_logger.propagate = True
                # LiteLLM's DEBUG lines carry whole requests (prompts, documents): only with LOG_CONTENT.
                lite_logger.setLevel(logging.DEBUG if settings.LOG_CONTENT else logging.ERROR)

            class FailureLogger(CustomLogger):  # type: ignore[misc]
                def _record(self, kwargs: dict[str, Any], start_time: Any, end_time: Any) -> None:
                    payload = kwargs.get("standard_logging_object") or {}
                    trace_id = payload.get("trace_id")
                    if not trace_id:
                        return
                    info = payload.get("error_information") or {}
                    latency = None
                    with contextlib.suppress(TypeError, AttributeError):
                        latency = (end_time - start_time).total_seconds() * 1000
                    _failures.add(
                        trace_id,
                        {
                            "model_id": payload.get("model_id"),
                            "model_group": payload.get("model_group"),
                            "error_class": info.get("error_class") or "Error",
                            "error_message": str(info.get("error_message") or payload.get("error_str") or ""),
                            "latency_ms": latency,
                        },
                    )

                def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
                    self._record(kwargs, start_time, end_time)

                async def async_log_failure_event(
                    self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
                ) -> None:
                    self._record(kwargs, start_time, end_time)

            litellm.callbacks = [FailureLogger()]
            from .local import register_local_provider

            register_local_provider(litellm)
            _litellm_ready = True
    return litellm


@dataclass
class _RouterState:
    router: Any
    version: int
    deployments: dict[int, DeploymentInfo]
    groups: dict[str, str]  # model group -> mode
    checked_at: float


_state: _RouterState | None = None


def _litellm_params(deployment: Deployment) -> dict[str, Any]:
    provider = deployment.provider
    model = deployment.litellm_model
    if "/" not in model:
        model = f"{KIND_PREFIX.get(ProviderKind(provider.kind), 'openai')}/{model}"
    params: dict[str, Any] = {"model": model}
    if provider.kind == ProviderKind.LOCAL and deployment.mode in (DeploymentMode.TRANSCRIPTION, DeploymentMode.SPEECH):
        from . import local

        params.update(local.audio_params(model))
    elif provider.has_api_key:
        params["api_key"] = provider.get_api_key()
    elif provider.kind in {ProviderKind.OPENAI_COMPATIBLE, ProviderKind.OLLAMA, ProviderKind.LOCAL}:
        params["api_key"] = "not-needed"
    if provider.api_base:
        params["api_base"] = provider.api_base
    params.update(provider.extra_params or {})
    if deployment.rpm:
        params["rpm"] = deployment.rpm
    if deployment.tpm:
        params["tpm"] = deployment.tpm
    if deployment.weight and deployment.weight != 1:
        params["weight"] = deployment.weight
    return params


def _info(deployment: Deployment) -> DeploymentInfo:
    return DeploymentInfo(
        id=deployment.pk,
        model_group=deployment.model_group,
        provider=deployment.provider.name,
        provider_kind=deployment.provider.kind,
        model=deployment.litellm_model,
        mode=deployment.mode,
        input_cost_per_token=deployment.input_cost_per_token,
        output_cost_per_token=deployment.output_cost_per_token,
        input_cost_per_second=deployment.input_cost_per_second,
        output_cost_per_character=deployment.output_cost_per_character,
        cost_per_query=deployment.cost_per_query,
        context_window=deployment.context_window,
        max_output_tokens=deployment.max_output_tokens,
    )


def _model_info(deployment: Deployment) -> dict[str, Any]:
    info: dict[str, Any] = {"id": str(deployment.pk), "mode": LITELLM_MODES[DeploymentMode(deployment.mode)]}
    for name in ("input_cost_per_token", "output_cost_per_token", "input_cost_per_second"):
        price = getattr(deployment, name)
        if price:
            info[name] = float(price)
    if deployment.context_window:
        info["max_input_tokens"] = deployment.context_window
    if deployment.max_output_tokens:
        info["max_output_tokens"] = deployment.max_output_tokens
    return info


def _build_state(version: int) -> _RouterState:
    litellm = _import_litellm()
    deployments = list(Deployment.objects.active().select_related("provider"))
    router_settings = RouterSettings.load()
    rules: dict[str, list[dict[str, list[str]]]] = {kind: [] for kind in FallbackKind.values}
    for rule in FallbackRule.objects.all():
        rules[rule.kind].append({rule.model_group: list(rule.fallback_groups)})
    model_list = []
    secrets: set[str] = set()
    for deployment in deployments:
        params = _litellm_params(deployment)
        if params.get("api_key") and params["api_key"] != "not-needed":
            secrets.add(params["api_key"])
        model_list.append(
            {"model_name": deployment.model_group, "litellm_params": params, "model_info": _model_info(deployment)}
        )
    register_secrets(secrets)
    arguments: dict[str, Any] = {
        "model_list": model_list,
        "routing_strategy": router_settings.routing_strategy,
        "num_retries": router_settings.num_retries,
        "timeout": router_settings.timeout,
        "stream_timeout": router_settings.stream_timeout,
        "allowed_fails": router_settings.allowed_fails,
        "cooldown_time": router_settings.cooldown_time,
        "retry_after": 0,
        "fallbacks": rules[FallbackKind.GENERAL],
        "context_window_fallbacks": rules[FallbackKind.CONTEXT_WINDOW],
        "content_policy_fallbacks": rules[FallbackKind.CONTENT_POLICY],
        "redis_url": settings.REDIS_URL,
    }
    arguments["retry_policy"] = litellm.RetryPolicy(**router_settings.effective_retry_policy())
    router = litellm.Router(**arguments)
    infos = {deployment.pk: _info(deployment) for deployment in deployments}
    groups = {deployment.model_group: deployment.mode for deployment in deployments}
    logger.info("gateway: router built (version %s, %s deployments)", version, len(deployments))
    return _RouterState(router, version, infos, groups, time.monotonic())


def _current_state(*, own_connection: bool = False) -> _RouterState:
    """The Router for the current configuration, rebuilt when it changed (double-checked lock)."""
    global _state
    state = _state
    now = time.monotonic()
    if state is not None and now - state.checked_at < CHECK_INTERVAL:
        return state
    version = config.current_version()
    if state is not None and (version == state.version or version == -1):
        state.checked_at = now
        return state
    with _build_lock:
        state = _state
        if state is None or state.version != version:
            try:
                _state = state = _build_state(version)
            finally:
                if own_connection:
                    close_old_connections()
                    from django.db import connection

                    connection.close()
    return state


async def _acurrent_state() -> _RouterState:
    state = _state
    if state is not None and time.monotonic() - state.checked_at < CHECK_INTERVAL:
        return state
    # Reading Redis and building the Router (import, ORM) would block the event loop.
    return await asyncio.to_thread(_current_state, own_connection=True)


def rebuild_now() -> None:
    """Forget the Router so the next call rebuilds it (used after a change in this process)."""
    global _state
    _state = None


# --- Call plumbing ------------------------------------------------------------------------------


def _check_params(params: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    forbidden = sorted(set(params) & PROVIDER_PARAMS)
    if forbidden:
        raise GatewayError("bad_request", f"Provider parameters cannot be set by callers: {', '.join(forbidden)}.")
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise GatewayError("bad_request", f"Unsupported parameter(s): {', '.join(unknown)}.")
    return {key: value for key, value in params.items() if value is not None}


def _check_group(state: _RouterState, group: str, mode: str) -> None:
    actual = state.groups.get(group)
    if actual is None:
        raise GatewayError("unknown_model", f"Unknown or disabled model {group!r}.")
    if actual != mode:
        raise GatewayError("wrong_mode", f"Model {group!r} is a {actual} model, not a {mode} model.")


def _deployment_for(state: _RouterState, model_id: Any) -> DeploymentInfo | None:
    try:
        return state.deployments.get(int(model_id))
    except (TypeError, ValueError):
        return None


def _failed_attempts(state: _RouterState, events: list[dict[str, Any]]) -> list[Attempt]:
    attempts = []
    for event in events:
        info = _deployment_for(state, event.get("model_id"))
        attempts.append(
            Attempt(
                deployment_id=info.id if info else None,
                model_group=info.model_group if info else str(event.get("model_group") or ""),
                provider=info.provider if info else "",
                model=info.model if info else "",
                status="failure",
                error_type=str(event.get("error_class") or "Error"),
                error_message=scrub(str(event.get("error_message") or ""))[:2000],
                latency_ms=event.get("latency_ms"),
            )
        )
    return attempts


def _cost(info: DeploymentInfo, usage: Usage, litellm_cost: Any) -> Decimal:
    """Our prices when the operator set any; otherwise LiteLLM's built-in price map (or 0)."""
    if info.priced:
        return (
            info.input_cost_per_token * usage.prompt_tokens
            + info.output_cost_per_token * usage.completion_tokens
            + info.input_cost_per_second * Decimal(str(round(usage.audio_seconds, 3)))
            + info.output_cost_per_character * usage.characters
            + info.cost_per_query * usage.queries
        )
    try:
        return Decimal(str(litellm_cost)) if litellm_cost else Decimal(0)
    except ArithmeticError:
        return Decimal(0)


def _rows(outcome: CallOutcome, context: CallContext) -> list[LLMCall]:
    from analytics.models import LLMCall

    now = timezone.now()
    rows = []
    for number, attempt in enumerate(outcome.attempts, start=1):
        # The last attempt carries the call's usage and cost (a stream that broke or was abandoned
        # still used tokens); earlier ones are the failures on the way.
        final = number == len(outcome.attempts)
        rows.append(
            LLMCall(
                created_at=now,
                trace_id=outcome.trace_id,
                attempt=number,
                user_id=context.user_id,
                app=context.app,
                call_type=outcome.call_type,
                model_group=attempt.model_group or outcome.requested_group,
                requested_group=outcome.requested_group,
                deployment_id=attempt.deployment_id,
                provider=attempt.provider,
                model=attempt.model,
                status=attempt.status,
                is_fallback=bool(attempt.model_group) and attempt.model_group != outcome.requested_group,
                error_type=attempt.error_type,
                error_message=attempt.error_message,
                prompt_tokens=outcome.usage.prompt_tokens if final else 0,
                completion_tokens=outcome.usage.completion_tokens if final else 0,
                total_tokens=outcome.usage.total_tokens if final else 0,
                audio_seconds=outcome.usage.audio_seconds if final else 0,
                characters=outcome.usage.characters if final else 0,
                cost=outcome.cost if final else Decimal(0),
                latency_ms=outcome.latency_ms if final else attempt.latency_ms,
                ttft_ms=outcome.ttft_ms if final else None,
                final=final,
            )
        )
    return rows


def _record(outcome: CallOutcome, context: CallContext) -> None:
    from analytics.models import LLMCall

    try:
        LLMCall.objects.bulk_create(_rows(outcome, context))
    except Exception:
        logger.exception("gateway: could not record call %s", outcome.trace_id)


async def _arecord(outcome: CallOutcome, context: CallContext) -> None:
    from analytics.models import LLMCall

    try:
        await LLMCall.objects.abulk_create(_rows(outcome, context))
    except Exception:
        logger.exception("gateway: could not record call %s", outcome.trace_id)


class _Call:
    """Bookkeeping shared by every entry point: trace id, attempts, outcome, errors."""

    def __init__(self, state: _RouterState, group: str, call_type: str) -> None:
        self.state = state
        self.trace_id = uuid.uuid4().hex
        self.started = time.perf_counter()
        self.outcome = CallOutcome(trace_id=self.trace_id, requested_group=group, call_type=call_type)
        _failures.open(self.trace_id)

    @property
    def kwargs(self) -> dict[str, Any]:
        return {"litellm_trace_id": self.trace_id}

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def succeeded(self, model_id: Any, usage: Usage, litellm_cost: Any) -> CallOutcome:
        outcome = self.outcome
        outcome.attempts = _failed_attempts(self.state, _failures.take(self.trace_id))
        info = _deployment_for(self.state, model_id)
        outcome.served_by = info
        outcome.usage = usage
        outcome.latency_ms = self.elapsed_ms()
        if info is not None:
            outcome.cost = _cost(info, usage, litellm_cost)
            outcome.attempts.append(
                Attempt(info.id, info.model_group, info.provider, info.model, "success", latency_ms=outcome.latency_ms)
            )
        return outcome

    def abandoned(self) -> CallOutcome:
        """The caller went away before the answer came (a cancelled non-streamed call)."""
        outcome = self.outcome
        outcome.attempts = _failed_attempts(self.state, _failures.take(self.trace_id))
        outcome.latency_ms = self.elapsed_ms()
        outcome.attempts.append(
            Attempt(
                None,
                outcome.requested_group,
                "",
                "",
                "abandoned",
                "ClientDisconnected",
                "The caller stopped waiting for the answer.",
                outcome.latency_ms,
            )
        )
        return outcome

    def failed(self, exc: BaseException) -> GatewayError:
        if isinstance(exc, GatewayError):
            _failures.take(self.trace_id)
            return exc
        outcome = self.outcome
        outcome.attempts = _failed_attempts(self.state, _failures.take(self.trace_id))
        outcome.latency_ms = self.elapsed_ms()
        kind = _classify(exc)
        detail = scrub(str(getattr(exc, "message", "") or exc)).split("\n", 1)[0][:300]
        if not outcome.attempts:
            # Nothing reached a provider (e.g. every deployment cooling down): record the refusal.
            outcome.attempts.append(
                Attempt(
                    None, outcome.requested_group, "", "", "failure", type(exc).__name__, detail, outcome.latency_ms
                )
            )
        message = _KIND_MESSAGES.get(kind, "The call failed.")
        if kind in {"unavailable", "rate_limited", "timeout"}:
            message = f"{message} Model {outcome.requested_group!r}: {len(outcome.attempts)} attempt(s)."
        missing = next((a.error_message for a in outcome.attempts if "needs the Python package" in a.error_message), "")
        if missing:
            # A local engine that is not installed: say which package, not "every deployment failed".
            message = missing[missing.index("The local ") :] if "The local " in missing else missing
        logger.warning("gateway: %s failed (%s): %s", outcome.requested_group, kind, detail)
        return GatewayError(kind, message, outcome=outcome)


def _chat_usage(response: Any) -> Usage:
    usage = getattr(response, "usage", None)
    if usage is None:
        return Usage()
    return Usage(
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
    )


def _hidden(response: Any) -> dict[str, Any]:
    hidden = getattr(response, "_hidden_params", None)
    return hidden if isinstance(hidden, dict) else {}


def _chat_result(call: _Call, response: Any) -> ChatResult:
    hidden = _hidden(response)
    outcome = call.succeeded(hidden.get("model_id"), _chat_usage(response), hidden.get("response_cost"))
    choice = response.choices[0]
    message = choice.message
    tool_calls = None
    if getattr(message, "tool_calls", None):
        tool_calls = [tool_call.model_dump() for tool_call in message.tool_calls]
    return ChatResult(
        text=message.content or "",
        finish_reason=choice.finish_reason,
        outcome=outcome,
        tool_calls=tool_calls,
        raw=response,
    )


def _prompt_tokens(litellm: Any, model: str, messages: list[dict[str, Any]]) -> int:
    try:
        return int(litellm.token_counter(model=model, messages=messages))
    except Exception:
        return sum(len(str(m.get("content") or "")) // 4 for m in messages)


def _text_tokens(litellm: Any, model: str, text: str) -> int:
    if not text:
        return 0
    try:
        return int(litellm.token_counter(model=model, text=text))
    except Exception:
        return len(text) // 4


# --- The gateway's event loop -------------------------------------------------------------------


class _GatewayLoop:
    """One event-loop thread per process runs every LiteLLM call, sync and async callers alike.

    The Router keeps loop-bound state (HTTP client pools, its Redis client), some routing strategies
    (cost-based, lar1) only exist on its async path, and its async failure callbacks are what tell us
    about each attempt. Running everything on one loop gives all callers (uvicorn's loop, Celery's
    threads, a test's fresh loop) the same behaviour. Started lazily, again after a fork.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def get(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None and self._pid == os.getpid():
            return loop
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                started = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                threading.Thread(target=run, name="gateway-loop", daemon=True).start()
                started.wait()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run on the gateway loop and wait, from a thread that is not running it."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.get())
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. a Celery time limit interrupting the wait
            raise

    async def arun(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Await on the gateway loop from any other loop; cancelling the caller cancels the call."""
        loop = self.get()
        if asyncio.get_running_loop() is loop:
            return await coroutine
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))


_loop = _GatewayLoop()


async def _invoke(call: _Call, method: str, **kwargs: Any) -> Any:
    return await getattr(call.state.router, method)(**kwargs, **call.kwargs)


def _call(
    state: _RouterState,
    group: str,
    mode: str,
    method: str,
    kwargs: dict[str, Any],
    to_result: Callable[[_Call, Any], R],
    context: CallContext,
) -> R:
    asked = group
    group = check_budget(context, group, mode)
    _check_group(state, group, mode)
    call = _Call(state, group, CALL_TYPES[mode])
    call.outcome.downgraded_from = asked if asked != group else None
    try:
        result = to_result(call, _loop.run(_invoke(call, method, model=group, **kwargs)))
    except Exception as exc:
        error = call.failed(exc)
        _record(call.outcome, context)
        raise error from None
    _record(result.outcome, context)  # type: ignore[attr-defined]
    return result


async def _acall(
    state: _RouterState,
    group: str,
    mode: str,
    method: str,
    kwargs: dict[str, Any],
    to_result: Callable[[_Call, Any], R],
    context: CallContext,
) -> R:
    asked = group
    group = await acheck_budget(context, group, mode)
    _check_group(state, group, mode)
    call = _Call(state, group, CALL_TYPES[mode])
    call.outcome.downgraded_from = asked if asked != group else None
    try:
        result = to_result(call, await _loop.arun(_invoke(call, method, model=group, **kwargs)))
    except asyncio.CancelledError:
        await asyncio.shield(_arecord(call.abandoned(), context))
        raise
    except Exception as exc:
        error = call.failed(exc)
        await _arecord(call.outcome, context)
        raise error from None
    await _arecord(result.outcome, context)  # type: ignore[attr-defined]
    return result


# --- Entry points: chat -------------------------------------------------------------------------


def chat(group: str, messages: list[dict[str, Any]], *, context: CallContext, **params: Any) -> ChatResult:
    params = _check_params(params, CHAT_PARAMS)
    return _call(
        _current_state(),
        group,
        DeploymentMode.CHAT,
        "acompletion",
        {"messages": messages, **params},
        _chat_result,
        context,
    )


async def achat(group: str, messages: list[dict[str, Any]], *, context: CallContext, **params: Any) -> ChatResult:
    params = _check_params(params, CHAT_PARAMS)
    return await _acall(
        await _acurrent_state(),
        group,
        DeploymentMode.CHAT,
        "acompletion",
        {"messages": messages, **params},
        _chat_result,
        context,
    )


class _StreamState:
    """What a stream has delivered so far, and how to close its books in every ending."""

    def __init__(self, call: _Call, messages: list[dict[str, Any]]) -> None:
        self.call = call
        self.messages = messages
        self.parts: list[str] = []
        self.model_id: Any = None
        self.usage: Usage | None = None
        self.cost: Any = None
        self.first_token_at: float | None = None
        self.finish_reason: str | None = None
        self.prior_attempts: list[Attempt] | None = None
        self.result: ChatResult | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def take(self, chunk: Any) -> str:
        hidden = _hidden(chunk)
        if hidden.get("model_id") is not None:
            self.model_id = hidden["model_id"]
        if hidden.get("response_cost") is not None:
            self.cost = hidden["response_cost"]
        usage = getattr(chunk, "usage", None)
        if usage is not None and getattr(usage, "completion_tokens", None):
            self.usage = _chat_usage(chunk)
        delta = ""
        if chunk.choices:
            choice = chunk.choices[0]
            delta = getattr(choice.delta, "content", None) or ""
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
        if delta:
            if self.first_token_at is None:
                self.first_token_at = time.perf_counter()
                # Attempts that failed before the stream started belong to this call; a failure
                # LiteLLM reports after this point is the stream's own and is recorded separately.
                self.prior_attempts = _failed_attempts(self.call.state, _failures.take(self.call.trace_id, close=False))
            self.parts.append(delta)
        return delta

    def _estimated_usage(self) -> Usage:
        litellm = _import_litellm()
        info = _deployment_for(self.call.state, self.model_id)
        model = info.model if info else ""
        return Usage(
            prompt_tokens=_prompt_tokens(litellm, model, self.messages),
            completion_tokens=_text_tokens(litellm, model, self.text),
        )

    def _ttft(self) -> float | None:
        if self.first_token_at is None:
            return None
        return (self.first_token_at - self.call.started) * 1000

    def finished(self) -> ChatResult:
        usage = self.usage or self._estimated_usage()
        prior = self.prior_attempts
        outcome = self.call.succeeded(self.model_id, usage, self.cost)
        if prior is not None:
            outcome.attempts = prior + outcome.attempts[-1:]
        outcome.ttft_ms = self._ttft()
        return ChatResult(text=self.text, finish_reason=self.finish_reason, outcome=outcome)

    def ended_early(self, status: str, error: BaseException | None = None) -> CallOutcome:
        """A stream that broke (status failure) or that the client abandoned (status abandoned).
        LiteLLM records nothing for an abandoned stream: its usage is estimated from the text."""
        call = self.call
        prior = self.prior_attempts or []
        _failures.take(call.trace_id)
        outcome = call.outcome
        info = _deployment_for(call.state, self.model_id)
        usage = self._estimated_usage()
        outcome.served_by = info
        outcome.usage = usage
        outcome.latency_ms = call.elapsed_ms()
        outcome.ttft_ms = self._ttft()
        if info is not None:
            outcome.cost = _cost(info, usage, None)
        message = scrub(str(error))[:2000] if error is not None else "The client stopped reading the stream."
        outcome.attempts = [
            *prior,
            Attempt(
                info.id if info else None,
                info.model_group if info else outcome.requested_group,
                info.provider if info else "",
                info.model if info else "",
                status,
                type(error).__name__ if error is not None else "ClientDisconnected",
                message,
                outcome.latency_ms,
            ),
        ]
        return outcome


def _stream_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    return {**params, "stream": True, "stream_options": {"include_usage": True}}


async def _stream_core(stream_state: _StreamState, params: dict[str, Any], raw: bool = False) -> AsyncIterator[Any]:
    """The stream itself, on the gateway loop: text deltas out, errors typed, nothing recorded."""
    call = stream_state.call
    try:
        response = await _invoke(
            call,
            "acompletion",
            model=call.outcome.requested_group,
            messages=stream_state.messages,
            **_stream_kwargs(params),
        )
    except Exception as exc:
        raise call.failed(exc) from None
    try:
        async for chunk in response:
            delta = stream_state.take(chunk)
            if raw:
                yield chunk  # every chunk as the provider sent it (tool-call deltas included)
            elif delta:
                yield delta
    except (asyncio.CancelledError, GeneratorExit):
        await _close_quietly(response)
        raise
    except Exception as exc:
        if not stream_state.parts:
            raise call.failed(exc) from None
        outcome = stream_state.ended_early("failure", exc)
        raise StreamInterrupted(
            "The provider's stream broke off; the partial answer was kept.", stream_state.text, outcome
        ) from None
    stream_state.result = stream_state.finished()


async def _pump(core: AsyncIterator[str], put: Callable[[str, Any], None]) -> None:
    """Drive a stream on the gateway loop, handing each event to the consumer's queue."""
    try:
        async for delta in core:
            put("delta", delta)
    except asyncio.CancelledError:
        put("cancelled", None)
        raise
    except BaseException as exc:
        put("error", exc)
    else:
        put("done", None)


async def _close_quietly(response: Any) -> None:
    closer = getattr(response, "aclose", None)
    if closer is None:
        return
    try:
        await closer()
    except Exception:  # the upstream connection may already be gone
        logger.debug("gateway: closing an abandoned stream failed", exc_info=True)


TERMINAL = frozenset({"done", "error", "cancelled"})
ABANDON_WAIT = 5.0  # seconds to wait for an abandoned stream's upstream call to close


class ChatStream:
    """An async stream of text deltas. After it ends, ``result`` holds the full ChatResult.

    If the consumer stops early (``aclose()``, cancellation, client disconnect), the upstream
    call is closed and the partial answer is recorded as abandoned. If the provider's stream
    breaks after text arrived, ``StreamInterrupted`` is raised with the partial text.
    """

    def __init__(
        self,
        group: str,
        messages: list[dict[str, Any]],
        context: CallContext,
        params: dict[str, Any],
        raw: bool = False,
    ):
        self.raw = raw
        self.group = group
        self.messages = messages
        self.context = context
        self.params = _check_params(params, CHAT_PARAMS)
        self.result: ChatResult | None = None
        self.abandoned: CallOutcome | None = None  # set when the consumer stopped early
        self._state: _StreamState | None = None
        self._generator: AsyncGenerator[str, None] | None = None

    @property
    def partial_text(self) -> str:
        return self._state.text if self._state is not None else ""

    @property
    def served_by(self) -> DeploymentInfo | None:
        """The deployment streaming the answer, once the first chunk has arrived."""
        return _deployment_for(self._state.call.state, self._state.model_id) if self._state is not None else None

    def __aiter__(self) -> AsyncGenerator[str, None]:
        if self._generator is None:
            self._generator = self._run()
        return self._generator

    async def aclose(self) -> None:
        if self._generator is not None:
            await self._generator.aclose()

    async def _run(self) -> AsyncGenerator[str, None]:
        state = await _acurrent_state()
        group = await acheck_budget(self.context, self.group, DeploymentMode.CHAT)
        _check_group(state, group, DeploymentMode.CHAT)
        stream_state = self._state = _StreamState(_Call(state, group, "chat"), self.messages)
        stream_state.call.outcome.downgraded_from = self.group if group != self.group else None
        here = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def put(kind: str, value: Any) -> None:
            here.call_soon_threadsafe(events.put_nowait, (kind, value))

        core = _stream_core(stream_state, self.params, self.raw)
        pump = asyncio.run_coroutine_threadsafe(_pump(core, put), _loop.get())
        try:
            while True:
                kind, value = await events.get()
                if kind == "delta":
                    yield value
                    continue
                if kind == "error":
                    if isinstance(value, GatewayError) and value.outcome is not None:
                        await _arecord(value.outcome, self.context)
                    raise value
                break
        except (asyncio.CancelledError, GeneratorExit):
            await asyncio.shield(self._abandon(pump, events))
            raise
        self.result = stream_state.result
        if self.result is not None:
            await _arecord(self.result.outcome, self.context)

    async def _abandon(self, pump: Any, events: asyncio.Queue[tuple[str, Any]]) -> None:
        pump.cancel()
        kind = ""
        try:
            async with asyncio.timeout(ABANDON_WAIT):
                while kind not in TERMINAL:
                    kind, _ = await events.get()
        except TimeoutError:
            logger.warning("gateway: an abandoned stream did not close within %s s", ABANDON_WAIT)
        assert self._state is not None
        if kind == "done" and self._state.result is not None:
            self.result = self._state.result  # it finished just as the client left
            await _arecord(self.result.outcome, self.context)
        elif kind != "error":
            self.abandoned = self._state.ended_early("abandoned")
            await _arecord(self.abandoned, self.context)


def astream_chat(
    group: str, messages: list[dict[str, Any]], *, context: CallContext, raw: bool = False, **params: Any
) -> ChatStream:
    """Text deltas; with ``raw=True`` the provider's chunk objects (for the OpenAI-compatible API)."""
    return ChatStream(group, messages, context, params, raw)


def stream_chat(
    group: str, messages: list[dict[str, Any]], *, context: CallContext, **params: Any
) -> Generator[str, None, ChatResult]:
    """The synchronous stream: yields text deltas; returns the ChatResult (``StopIteration.value``)."""
    params = _check_params(params, CHAT_PARAMS)
    state = _current_state()
    asked = group
    group = check_budget(context, group, DeploymentMode.CHAT)
    _check_group(state, group, DeploymentMode.CHAT)
    stream_state = _StreamState(_Call(state, group, "chat"), messages)
    stream_state.call.outcome.downgraded_from = asked if asked != group else None
    events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    pump = asyncio.run_coroutine_threadsafe(
        _pump(_stream_core(stream_state, params), lambda kind, value: events.put((kind, value))), _loop.get()
    )
    try:
        while True:
            kind, value = events.get()
            if kind == "delta":
                yield value
                continue
            if kind == "error":
                if isinstance(value, GatewayError) and value.outcome is not None:
                    _record(value.outcome, context)
                raise value
            break
    except GeneratorExit:
        pump.cancel()
        deadline = time.monotonic() + ABANDON_WAIT
        while kind not in TERMINAL and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                kind, _ = events.get(timeout=max(0.01, deadline - time.monotonic()))
        if kind == "done" and stream_state.result is not None:
            _record(stream_state.result.outcome, context)
        elif kind != "error":
            _record(stream_state.ended_early("abandoned"), context)
        raise
    assert stream_state.result is not None
    _record(stream_state.result.outcome, context)
    return stream_state.result


# --- Entry points: embeddings, rerank, audio ----------------------------------------------------


def _embedding_result(call: _Call, response: Any) -> EmbeddingResult:
    hidden = _hidden(response)
    usage = Usage(prompt_tokens=int(getattr(getattr(response, "usage", None), "prompt_tokens", 0) or 0))
    outcome = call.succeeded(hidden.get("model_id"), usage, hidden.get("response_cost"))
    vectors = [list(item["embedding"]) for item in sorted(response.data, key=lambda item: item["index"])]
    return EmbeddingResult(vectors=vectors, outcome=outcome)


def embed(group: str, texts: list[str], *, context: CallContext, **params: Any) -> EmbeddingResult:
    params = _check_params(params, EMBEDDING_PARAMS)
    return _call(
        _current_state(),
        group,
        DeploymentMode.EMBEDDING,
        "aembedding",
        {"input": texts, **params},
        _embedding_result,
        context,
    )


async def aembed(group: str, texts: list[str], *, context: CallContext, **params: Any) -> EmbeddingResult:
    params = _check_params(params, EMBEDDING_PARAMS)
    return await _acall(
        await _acurrent_state(),
        group,
        DeploymentMode.EMBEDDING,
        "aembedding",
        {"input": texts, **params},
        _embedding_result,
        context,
    )


def _rerank_result(call: _Call, response: Any) -> RerankResult:
    hidden = _hidden(response)
    meta = getattr(response, "meta", None) or {}
    units = ((meta.get("billed_units") or {}).get("search_units")) if isinstance(meta, dict) else None
    outcome = call.succeeded(hidden.get("model_id"), Usage(queries=int(units or 1)), hidden.get("response_cost"))
    results = [(int(item["index"]), float(item["relevance_score"])) for item in response.results]
    return RerankResult(results=results, outcome=outcome)


def rerank(
    group: str, query: str, documents: list[str], *, context: CallContext, top_n: int | None = None
) -> RerankResult:
    return _call(
        _current_state(),
        group,
        DeploymentMode.RERANK,
        "arerank",
        {"query": query, "documents": documents, "top_n": top_n},
        _rerank_result,
        context,
    )


async def arerank(
    group: str, query: str, documents: list[str], *, context: CallContext, top_n: int | None = None
) -> RerankResult:
    return await _acall(
        await _acurrent_state(),
        group,
        DeploymentMode.RERANK,
        "arerank",
        {"query": query, "documents": documents, "top_n": top_n},
        _rerank_result,
        context,
    )


def _transcription_result(call: _Call, response: Any) -> TranscriptionResult:
    hidden = _hidden(response)
    duration = getattr(response, "duration", None)
    if duration is None and isinstance(response, dict):
        duration = response.get("duration")
    segments = getattr(response, "segments", None) or []
    language = getattr(response, "language", None)
    usage = Usage(audio_seconds=float(duration or 0))
    outcome = call.succeeded(hidden.get("model_id"), usage, hidden.get("response_cost"))
    return TranscriptionResult(
        text=response.text or "",
        language=language,
        duration=float(duration) if duration is not None else None,
        segments=[dict(segment) for segment in segments],
        outcome=outcome,
    )


def _transcription_kwargs(audio: bytes, filename: str, language: str | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"file": (filename, audio), "response_format": "verbose_json"}
    if language:
        kwargs["language"] = language
    return kwargs


def transcribe(
    group: str, audio: bytes, filename: str, *, context: CallContext, language: str | None = None
) -> TranscriptionResult:
    return _call(
        _current_state(),
        group,
        DeploymentMode.TRANSCRIPTION,
        "atranscription",
        _transcription_kwargs(audio, filename, language),
        _transcription_result,
        context,
    )


async def atranscribe(
    group: str, audio: bytes, filename: str, *, context: CallContext, language: str | None = None
) -> TranscriptionResult:
    return await _acall(
        await _acurrent_state(),
        group,
        DeploymentMode.TRANSCRIPTION,
        "atranscription",
        _transcription_kwargs(audio, filename, language),
        _transcription_result,
        context,
    )


SPEECH_CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "pcm": "audio/L16",
}


def _speech_result_for(text: str, response_format: str) -> Callable[[_Call, Any], SpeechResult]:
    def to_result(call: _Call, response: Any) -> SpeechResult:
        hidden = _hidden(response)
        outcome = call.succeeded(hidden.get("model_id"), Usage(characters=len(text)), hidden.get("response_cost"))
        audio = response.content if hasattr(response, "content") else bytes(response)
        content_type = SPEECH_CONTENT_TYPES.get(response_format, "application/octet-stream")
        if audio[:4] == b"RIFF":
            content_type = "audio/wav"
        return SpeechResult(audio=audio, content_type=content_type, outcome=outcome)

    return to_result


def speak(
    group: str, text: str, *, context: CallContext, voice: str = "alloy", response_format: str = "mp3"
) -> SpeechResult:
    return _call(
        _current_state(),
        group,
        DeploymentMode.SPEECH,
        "aspeech",
        {"input": text, "voice": voice, "response_format": response_format},
        _speech_result_for(text, response_format),
        context,
    )


async def aspeak(
    group: str, text: str, *, context: CallContext, voice: str = "alloy", response_format: str = "mp3"
) -> SpeechResult:
    return await _acall(
        await _acurrent_state(),
        group,
        DeploymentMode.SPEECH,
        "aspeech",
        {"input": text, "voice": voice, "response_format": response_format},
        _speech_result_for(text, response_format),
        context,
    )


# --- Operators' tools ---------------------------------------------------------------------------


@dataclass
class ProbeResult:
    ok: bool
    latency_ms: float
    error: str = ""


def probe_deployment(deployment: Deployment, *, app: str = "probe", user_id: int | None = None) -> ProbeResult:
    """One cheap real call to a single deployment, straight to its provider (not through routing)."""
    litellm = _import_litellm()
    params = _litellm_params(deployment)
    register_secrets({params["api_key"]} if params.get("api_key") else set())
    params.pop("rpm", None)
    params.pop("tpm", None)
    params.pop("weight", None)
    params.setdefault("max_retries", 0)  # one call: the probe measures the provider, not the retries
    started = time.perf_counter()
    info = _info(deployment)
    outcome = CallOutcome(trace_id=uuid.uuid4().hex, requested_group=deployment.model_group, call_type=deployment.mode)
    timeout = min(30.0, RouterSettings.load().timeout)
    try:
        if deployment.mode == DeploymentMode.CHAT:
            response = litellm.completion(
                messages=[{"role": "user", "content": "ping"}], max_tokens=1, timeout=timeout, **params
            )
            outcome.usage = _chat_usage(response)
        elif deployment.mode == DeploymentMode.EMBEDDING:
            response = litellm.embedding(input=["ping"], timeout=timeout, **params)
        elif deployment.mode == DeploymentMode.RERANK:
            response = litellm.rerank(query="ping", documents=["ping"], top_n=1, timeout=timeout, **params)
            outcome.usage = Usage(queries=1)
        elif deployment.mode == DeploymentMode.TRANSCRIPTION:
            response = litellm.transcription(file=("ping.wav", _silent_wav()), timeout=timeout, **params)
            outcome.usage = Usage(audio_seconds=0.5)
        else:
            response = litellm.speech(input="ping", voice="alloy", timeout=timeout, **params)
            outcome.usage = Usage(characters=4)
    except Exception as exc:
        latency = (time.perf_counter() - started) * 1000
        message = scrub(str(exc)).split("\n", 1)[0][:300]
        outcome.latency_ms = latency
        outcome.attempts = [
            Attempt(
                info.id, info.model_group, info.provider, info.model, "failure", type(exc).__name__, message, latency
            )
        ]
        _record(outcome, CallContext(app=app, user_id=user_id))
        return ProbeResult(False, latency, f"{type(exc).__name__}: {message}")
    latency = (time.perf_counter() - started) * 1000
    outcome.served_by = info
    outcome.latency_ms = latency
    outcome.cost = _cost(info, outcome.usage, _hidden(response).get("response_cost"))
    outcome.attempts = [Attempt(info.id, info.model_group, info.provider, info.model, "success", latency_ms=latency)]
    _record(outcome, CallContext(app=app, user_id=user_id))
    return ProbeResult(True, latency)


def _silent_wav(seconds: float = 0.5, rate: int = 16000) -> bytes:
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


def cooldowns(deployment_ids: list[int]) -> set[int]:
    """Which of these deployments LiteLLM is cooling down right now (read from Redis)."""
    if not deployment_ids:
        return set()
    state = _current_state()
    try:
        active = state.router.health().cooldowns.get_active_cooldowns([str(i) for i in deployment_ids], None)
    except Exception:
        logger.warning("gateway: cannot read cooldowns", exc_info=True)
        return set()
    return {int(model_id) for model_id, _ in active}


def model_groups(mode: str = DeploymentMode.CHAT) -> list[str]:
    """Enabled model groups of a mode, from the database (no LiteLLM import)."""
    return Deployment.objects.group_names(mode)


# --- Context windows ----------------------------------------------------------------------------

MESSAGE_OVERHEAD_TOKENS = 4  # role and separators, per message, as OpenAI counts them


def count_tokens(text: str, model: str = "") -> int:
    """Tokens in a text, by LiteLLM's tokenizer for the model (tiktoken's cl100k by default)."""
    return _text_tokens(_import_litellm(), model, text)


def context_budget(group: str) -> int | None:
    """Input tokens a request to this group may hold: the smallest context window among its
    deployments, less the output they may write; None when no deployment declares a window."""
    state = _current_state()
    budgets = [
        info.context_window - (info.max_output_tokens or 0)
        for info in state.deployments.values()
        if info.model_group == group and info.context_window
    ]
    return max(1, min(budgets)) if budgets else None


def fit_messages(group: str, messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The messages that fit the group's context window, and how many were left out.

    System messages and the last message are always kept; the oldest others go first. A request
    still too long after that is sent as is, so that a context-window fallback can take it.
    """
    budget = context_budget(group)
    if budget is None:
        return messages, 0
    litellm = _import_litellm()
    model = next((info.model for info in _current_state().deployments.values() if info.model_group == group), "")
    sizes = [_text_tokens(litellm, model, str(m.get("content") or "")) + MESSAGE_OVERHEAD_TOKENS for m in messages]
    total = sum(sizes)
    keep = [True] * len(messages)
    dropped = 0
    for index, message in enumerate(messages[:-1]):
        if total <= budget:
            break
        if message.get("role") == "system":
            continue
        keep[index] = False
        total -= sizes[index]
        dropped += 1
    return [message for message, kept in zip(messages, keep, strict=True) if kept], dropped


# --- Budgets and rate limits --------------------------------------------------------------------


@dataclass
class BudgetStatus:
    limit: Decimal
    spent: Decimal
    period: str
    resets_at: datetime.datetime
    downgrade_group: str
    downgrade_at: Decimal
    requests_per_minute: int | None

    @property
    def remaining(self) -> Decimal:
        return max(Decimal(0), self.limit - self.spent)

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.limit

    @property
    def nearly_spent(self) -> bool:
        return bool(self.downgrade_group) and self.spent >= self.limit * self.downgrade_at


def period_start(period: str, now: datetime.datetime | None = None) -> tuple[datetime.datetime, datetime.datetime]:
    """The start of the current budget period and the start of the next (UTC)."""
    now = now or timezone.now()
    day = now.astimezone(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + datetime.timedelta(days=1)
    month = day.replace(day=1)
    following = (month + datetime.timedelta(days=32)).replace(day=1)
    return month, following


def budget_status(user_id: int | None) -> BudgetStatus | None:
    from django.db.models import Sum

    from analytics.models import Budget, LLMCall

    budget = Budget.objects.for_user_id(user_id)
    if budget is None or user_id is None:
        return None
    start, resets = period_start(budget.period)
    spent = LLMCall.objects.filter(user_id=user_id, created_at__gte=start).aggregate(total=Sum("cost"))["total"]
    return BudgetStatus(
        budget.limit_usd,
        spent or Decimal(0),
        budget.period,
        resets,
        budget.downgrade_group,
        budget.downgrade_at,
        budget.requests_per_minute,
    )


def _rate_limited(user_id: int, limit: int) -> bool:
    """A fixed one-minute window per user, counted in Redis so every process shares it."""
    from django.core.cache import cache

    key = f"gateway:rpm:{user_id}:{int(time.time() // 60)}"
    try:
        cache.add(key, 0, timeout=120)
        return int(cache.incr(key)) > limit
    except Exception:  # Redis down: do not block traffic on the limiter
        logger.warning("gateway: cannot count requests for the rate limit")
        return False


BUDGETS_CHECK_INTERVAL = 1.0  # seconds another process's new budget may take to apply here
_budgets_seen: tuple[float, int, bool] | None = None  # (when, pid, any budget configured)


def forget_budgets(**kwargs: Any) -> None:
    """Connected to Budget saves and deletes: this process sees the change at once."""
    global _budgets_seen
    _budgets_seen = None


def _any_budget_known() -> bool | None:
    """Whether any budget is configured, if this process looked within the last second."""
    seen = _budgets_seen
    if seen is None or seen[1] != os.getpid() or time.monotonic() - seen[0] > BUDGETS_CHECK_INTERVAL:
        return None
    return seen[2]


def _any_budget() -> bool:
    global _budgets_seen
    known = _any_budget_known()
    if known is not None:
        return known
    from analytics.models import Budget

    found = Budget.objects.exists()
    _budgets_seen = (time.monotonic(), os.getpid(), found)
    return found


async def acheck_budget(context: CallContext, group: str, mode: str) -> str:
    """``check_budget`` from async code, without a thread hop when no budget is configured."""
    if context.user_id is None or _any_budget_known() is False:
        return group
    return await sync_to_async(check_budget)(context, group, mode)


def check_budget(context: CallContext, group: str, mode: str) -> str:
    """Before any call: refuse it when the user's budget is spent or they are over their rate limit
    (nothing is sent to a provider); move a chat to the cheaper group when the budget is nearly
    spent. Returns the group to call."""
    if context.user_id is None or not _any_budget():
        return group
    status = budget_status(context.user_id)
    if status is None:
        return group
    if status.requests_per_minute and _rate_limited(context.user_id, status.requests_per_minute):
        raise GatewayError(
            "rate_limited",
            f"You are over your limit of {status.requests_per_minute} requests per minute; wait a moment.",
        )
    if status.exhausted:
        raise GatewayError(
            "budget_exceeded",
            f"Your budget of ${status.limit:.2f} per {status.period} is spent (${status.spent:.4f} used); "
            f"it resets at {status.resets_at:%Y-%m-%d %H:%M} UTC.",
        )
    if mode == DeploymentMode.CHAT and status.nearly_spent and status.downgrade_group != group:
        return status.downgrade_group
    return group
