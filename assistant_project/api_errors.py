"""One JSON error shape for every API error: ``{"error": {"type": ..., "message": ...}}``."""

from __future__ import annotations

import logging
import sys
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

API_PREFIXES = ("/api/", "/v1/")


def error_body(error_type: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"type": error_type, "message": message, **extra}}


def _message(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(_message(item) for item in detail)
    if isinstance(detail, dict):
        return "; ".join(
            f"{key}: {_message(value)}" if key != "non_field_errors" else _message(value)
            for key, value in detail.items()
        )
    return str(detail)


def _type_for(exc: exceptions.APIException) -> str:
    if isinstance(exc, exceptions.ValidationError):
        return "invalid_request"
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        return "authentication_error"
    if isinstance(exc, exceptions.PermissionDenied):
        return "permission_denied"
    if isinstance(exc, exceptions.NotFound):
        return "not_found"
    if isinstance(exc, exceptions.MethodNotAllowed):
        return "method_not_allowed"
    if isinstance(exc, exceptions.Throttled):
        return "rate_limited"
    return exc.default_code if isinstance(exc.default_code, str) else "error"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is None and is_database_outage(exc):
        logger.warning("database unavailable: %s", exc)
        response = Response(error_body("service_unavailable", DATABASE_DOWN), status=503)
        response["Retry-After"] = RETRY_AFTER
        return response
    if response is None:
        logger.exception("Unhandled API error", exc_info=exc)
        return Response(error_body("server_error", "The server failed to handle this request."), status=500)
    assert isinstance(exc, exceptions.APIException) or response.status_code == 404
    if isinstance(exc, exceptions.APIException):
        body = error_body(_type_for(exc), _message(exc.detail))
        if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
            body["error"]["fields"] = exc.detail
    else:  # Django's Http404 / PermissionDenied, converted by DRF
        body = error_body("not_found" if response.status_code == 404 else "permission_denied", _message(response.data))
    response.data = body
    return response


def is_api_path(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIXES)


def json_error(status: int, error_type: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(error_type, message), status=status)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request):
        return json_error(404, "not_found", "No such resource.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception or Exception())


DATABASE_DOWN = "The database cannot be reached at the moment; try again in a few seconds."
RETRY_AFTER = "5"


def is_database_outage(exc: BaseException | None) -> bool:
    """Connection refused or lost, server shutting down, statement cancelled: transient, not a bug."""
    return isinstance(exc, (OperationalError, InterfaceError))


def database_unavailable(request: HttpRequest) -> HttpResponse:
    """503 with a clear message, rendered without touching the database (no session, no user)."""
    if is_api_path(request):
        response: HttpResponse = json_error(503, "service_unavailable", DATABASE_DOWN)
    else:
        response = HttpResponse(render_to_string("503.html", {"message": DATABASE_DOWN}), status=503)
    response["Retry-After"] = RETRY_AFTER
    return response


class DatabaseOutageMiddleware:
    """A view that fails because the database is unreachable answers 503, not 500 (errors outside
    views, such as saving the session, reach ``handler500``, which does the same)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_database_outage(exception):
            logger.warning("database unavailable: %s %s: %s", request.method, request.path, exception)
            return database_unavailable(request)
        return None


def handler500(request: HttpRequest) -> HttpResponse:
    if is_database_outage(sys.exc_info()[1]):
        return database_unavailable(request)
    if is_api_path(request):
        return json_error(500, "server_error", "The server failed to handle this request.")
    from django.views.defaults import server_error

    return server_error(request)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request):
        return json_error(403, "permission_denied", "You may not do this.")
    from django.views.defaults import permission_denied

    return permission_denied(request, exception or Exception())


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request):
        return json_error(400, "invalid_request", "Bad request.")
    from django.views.defaults import bad_request

    return bad_request(request, exception or Exception())
