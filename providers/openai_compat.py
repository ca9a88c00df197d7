"""OpenAI-compatible endpoints under ``/v1/``: any OpenAI SDK or tool can point ``base_url`` at the
platform and get its routing, fallbacks, budgets and analytics with a platform API key.

Only the standard OpenAI request fields are accepted; provider parameters (``api_base``,
``api_key``, ``base_url``, headers...) are refused with 400, never forwarded. Errors use the OpenAI
shape ``{"error": {"message", "type", "param", "code"}}``. Every call is recorded with app ``api``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import wraps
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from assistant_project.accounts.models import ApiKey
from assistant_project.http import EventStreamResponse

from . import gateway
from .models import Deployment, DeploymentMode

CHAT_FIELDS = {"model", "messages", "stream", "stream_options", *gateway.CHAT_PARAMS}
EMBEDDING_FIELDS = {"model", "input", "encoding_format", "dimensions", "user"}
SPEECH_FIELDS = {"model", "input", "voice", "response_format", "speed", "instructions"}
RERANK_FIELDS = {"model", "query", "documents", "top_n", "return_documents"}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
    502: "api_error",
    503: "api_error",
    504: "api_error",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


def error_response(status: int, message: str, code: str | None = None, param: str | None = None) -> JsonResponse:
    body = {"error": {"message": message, "type": ERROR_TYPES.get(status, "api_error"), "param": param, "code": code}}
    return JsonResponse(body, status=status)


def from_gateway(error: gateway.GatewayError) -> ApiError:
    codes = {
        "unknown_model": (404, "model_not_found"),
        "wrong_mode": (400, "invalid_model"),
        "budget_exceeded": (429, "insufficient_quota"),
        "rate_limited": (429, "rate_limit_exceeded"),
        "context_window": (400, "context_length_exceeded"),
        "content_policy": (400, "content_policy_violation"),
    }
    status, code = codes.get(error.kind, (error.status if error.status >= 500 else 502, error.kind))
    return ApiError(status, error.message, code)


def _authenticate(request: HttpRequest) -> Any:
    api_key = ApiKey.from_request(request)
    if api_key is None:
        raise ApiError(
            401,
            "Incorrect or missing API key: send a platform API key as 'Authorization: Bearer KEY'.",
            "invalid_api_key",
        )
    return api_key.user


def _json_body(request: HttpRequest, allowed: set[str]) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise ApiError(400, "The body must be JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.")
    _check_fields(body, allowed)
    return body


def _check_fields(body: dict[str, Any], allowed: set[str]) -> None:
    forbidden = sorted(set(body) & gateway.PROVIDER_PARAMS)
    if forbidden:
        raise ApiError(
            400, f"Provider parameters cannot be set: {', '.join(forbidden)}.", "forbidden_parameter", forbidden[0]
        )
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"Unrecognized request argument(s): {', '.join(unknown)}.", "unknown_parameter", unknown[0])
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ApiError(400, "'model' is required.", param="model")


View = Callable[..., Coroutine[Any, Any, HttpResponseBase]]


def openai_view(view: View) -> View:
    """Authenticate, turn errors into OpenAI-shaped responses, and allow only POST/GET as declared."""

    @wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            user = await sync_to_async(_authenticate)(request)
            return await view(request, user, *args, **kwargs)
        except ApiError as exc:
            return error_response(exc.status, exc.message, exc.code, exc.param)
        except gateway.GatewayError as exc:
            error = from_gateway(exc)
            return error_response(error.status, error.message, error.code)

    return csrf_exempt(wrapper)


def _method(request: HttpRequest, method: str) -> None:
    if request.method != method:
        raise ApiError(405, f"Use {method}.")


@openai_view
async def models(request: HttpRequest, user: Any) -> HttpResponseBase:
    _method(request, "GET")
    groups = await sync_to_async(_all_groups)()
    return JsonResponse(
        {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": 0, "owned_by": "platform"} for name in groups],
        }
    )


def _all_groups() -> list[str]:
    return sorted({name for mode in DeploymentMode.values for name in Deployment.objects.group_names(mode)})


def _context(user: Any) -> gateway.CallContext:
    return gateway.CallContext(app="api", user_id=user.pk)


def _dump(value: Any) -> dict[str, Any]:
    dumped = value.model_dump(exclude_none=False) if hasattr(value, "model_dump") else dict(value)
    dumped.pop("_hidden_params", None)
    return dumped


@openai_view
async def chat_completions(request: HttpRequest, user: Any) -> HttpResponseBase:
    _method(request, "POST")
    body = _json_body(request, CHAT_FIELDS)
    group, messages = body.pop("model"), body.pop("messages", None)
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list.", param="messages")
    stream = bool(body.pop("stream", False))
    include_usage = bool((body.pop("stream_options", None) or {}).get("include_usage"))
    params = {key: value for key, value in body.items() if value is not None}
    if not stream:
        result = await gateway.achat(group, messages, context=_context(user), **params)
        payload = _dump(result.raw)
        payload["model"] = group
        return JsonResponse(payload)
    chat_stream = gateway.astream_chat(group, messages, context=_context(user), raw=True, **params)
    iterator = chat_stream.__aiter__()
    try:
        first = await iterator.__anext__()  # errors before the first chunk are plain HTTP errors
    except StopAsyncIteration:
        first = None
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"

    async def events() -> AsyncIterator[str]:
        created = int(time.time())
        chunk: Any = first
        try:
            while chunk is not None:
                data = _dump(chunk)
                data.pop("usage", None)  # our own usage chunk closes the stream, once
                data.update({"id": completion_id, "model": group, "created": created})
                if data.get("choices"):
                    yield f"data: {json.dumps(data)}\n\n"
                try:
                    chunk = await iterator.__anext__()
                except StopAsyncIteration:
                    chunk = None
        except gateway.GatewayError as exc:
            error = from_gateway(exc)
            failure = {"error": {"message": error.message, "type": "api_error", "code": error.code}}
            yield f"data: {json.dumps(failure)}\n\n"
            return
        if include_usage and chat_stream.result is not None:
            usage = chat_stream.result.outcome.usage
            final = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": group,
                "choices": [],
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                },
            }
            yield f"data: {json.dumps(final)}\n\n"
        yield "data: [DONE]\n\n"

    return EventStreamResponse(events())


@openai_view
async def embeddings(request: HttpRequest, user: Any) -> HttpResponseBase:
    _method(request, "POST")
    body = _json_body(request, EMBEDDING_FIELDS)
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(text, str) for text in texts):
        raise ApiError(400, "'input' must be a string or a list of strings.", param="input")
    params = {key: body[key] for key in ("dimensions", "user") if body.get(key) is not None}
    result = await gateway.aembed(body["model"], texts, context=_context(user), **params)
    usage = result.outcome.usage
    return JsonResponse(
        {
            "object": "list",
            "model": body["model"],
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(result.vectors)],
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
        }
    )


@openai_view
async def transcriptions(request: HttpRequest, user: Any) -> HttpResponseBase:
    _method(request, "POST")
    fields = {key: request.POST.get(key) for key in request.POST}
    _check_fields(
        fields, {"model", "language", "prompt", "response_format", "temperature", "timestamp_granularities[]"}
    )
    upload = request.FILES.get("file")
    if upload is None:
        raise ApiError(400, "Send the audio as the multipart field 'file'.", param="file")
    from django.conf import settings

    if (upload.size or 0) > settings.AUDIO_MAX_BYTES:
        raise ApiError(400, "The audio file is larger than the platform accepts.", param="file")
    result = await gateway.atranscribe(
        str(fields["model"]),
        upload.read(),
        upload.name or "audio",
        context=_context(user),
        language=fields.get("language"),
    )
    if fields.get("response_format") == "text":
        return HttpResponse(result.text, content_type="text/plain; charset=utf-8")
    payload: dict[str, Any] = {"text": result.text}
    if fields.get("response_format") == "verbose_json":
        payload.update({"language": result.language, "duration": result.duration, "segments": result.segments})
    return JsonResponse(payload)


@openai_view
async def speech(request: HttpRequest, user: Any) -> HttpResponseBase:
    _method(request, "POST")
    body = _json_body(request, SPEECH_FIELDS)
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "'input' must be non-empty text.", param="input")
    result = await gateway.aspeak(
        body["model"],
        text,
        context=_context(user),
        voice=str(body.get("voice") or "alloy"),
        response_format=str(body.get("response_format") or "mp3"),
    )
    return HttpResponse(result.audio, content_type=result.content_type)


@openai_view
async def rerank(request: HttpRequest, user: Any) -> HttpResponseBase:
    _method(request, "POST")
    body = _json_body(request, RERANK_FIELDS)
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        raise ApiError(400, "'documents' must be a non-empty list.", param="documents")
    texts = [str(d.get("text", "")) if isinstance(d, dict) else str(d) for d in documents]
    if not isinstance(body.get("query"), str):
        raise ApiError(400, "'query' must be text.", param="query")
    result = await gateway.arerank(body["model"], body["query"], texts, context=_context(user), top_n=body.get("top_n"))
    return JsonResponse(
        {
            "id": f"rerank-{uuid.uuid4().hex[:16]}",
            "results": [{"index": index, "relevance_score": score} for index, score in result.results],
            "meta": {"billed_units": {"search_units": result.outcome.usage.queries or 1}},
        }
    )
