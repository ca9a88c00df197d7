"""ASGI entry point: the production server (uvicorn) runs this, since chat streams need ASGI."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant_project.settings")

django_application = get_asgi_application()

from django.conf import settings  # noqa: E402 - after the settings are set up


# Routes that take uploads, and the most bytes their body may hold.
def _page_upload_limit() -> int:
    return int(settings.DOCUMENT_MAX_BYTES * settings.DOCUMENT_MAX_FILES)


def _api_upload_limit() -> int:
    return int(settings.DOCUMENT_MAX_BYTES)


def _audio_limit() -> int:
    return int(settings.AUDIO_MAX_BYTES)


UPLOAD_ROUTES: list[tuple[re.Pattern[str], Callable[[], int]]] = [
    (re.compile(r"^/documents/\d+/upload$"), _page_upload_limit),
    (re.compile(r"^/api/v1/documents/upload$"), _api_upload_limit),
    (re.compile(r"^/audio/$"), _audio_limit),  # the transcription page's upload form
    (re.compile(r"^/(api/v1/|v1/)?audio/(transcriptions|conversation|voice/\d+/turn)$"), _audio_limit),
]
SLACK = 64 * 1024  # multipart boundaries and form fields


class BodyTooLarge(Exception):
    pass


def body_limit(path: str) -> int:
    """The upload limit of an upload route; REQUEST_MAX_BYTES for every other route."""
    for pattern, limit in UPLOAD_ROUTES:
        if pattern.match(path):
            return limit() + SLACK
    return int(settings.REQUEST_MAX_BYTES) + SLACK


async def _refuse(send: Any, limit: int) -> None:
    body = (
        b'{"error": {"type": "payload_too_large", "message": "The upload is larger than the limit of '
        + str(limit - SLACK).encode()
        + b' bytes."}}'
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Django, behind a guard that refuses a body over its route's limit before reading it: Django's
    ASGI handler would otherwise read the whole body into a temporary file first."""
    if scope["type"] != "http":
        await django_application(scope, receive, send)
        return
    limit = body_limit(scope.get("path", ""))
    headers = dict(scope.get("headers") or [])
    try:
        declared = int(headers.get(b"content-length", b"0"))
    except ValueError:
        declared = 0
    if declared > limit:
        await _refuse(send, limit)
        return
    received = 0

    async def counted_receive() -> Any:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge
        return message

    try:
        await django_application(scope, counted_receive, send)
    except BodyTooLarge:
        await _refuse(send, limit)
