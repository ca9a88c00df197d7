"""One structured JSON log line per request: request id, user id, route, method, status and
duration. Never the request's body (message text, document text, keys)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.functional import SimpleLazyObject

logger = logging.getLogger("assistant.requests")


def _known_user(request: HttpRequest) -> Any:
    """The user, if the view has already loaded it (session, DRF or API key): never an extra query."""
    for name in ("_cached_user", "_acached_user"):
        if hasattr(request, name):
            return getattr(request, name)
    user = request.__dict__.get("user")  # set outright by DRF and the API-key views
    return None if user is None or isinstance(user, SimpleLazyObject) else user


class RequestLogMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        request_id = self._start(request)
        response = self.get_response(request)
        self._log(request, response, request_id, started)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        request_id = self._start(request)
        response: HttpResponseBase = await self.get_response(request)
        self._log(request, response, request_id, started)
        return response

    @staticmethod
    def _start(request: HttpRequest) -> str:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if incoming.isalnum() and len(incoming) <= 64 else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        return request_id

    @staticmethod
    def _log(request: HttpRequest, response: HttpResponseBase, request_id: str, started: float) -> None:
        response["X-Request-ID"] = request_id
        user = _known_user(request)
        match = getattr(request, "resolver_match", None)
        line = {
            "request_id": request_id,
            "method": request.method,
            "route": f"/{match.route}" if match is not None else None,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "user_id": user.pk if user is not None and user.is_authenticated else None,
            "streaming": bool(getattr(response, "streaming", False)),
        }
        logger.info(json.dumps(line))
