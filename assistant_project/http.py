"""Typed request classes for views (see django-stubs' advice on request.user)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from django.contrib.auth.models import User
from django.http import HttpRequest, StreamingHttpResponse
from django_htmx.middleware import HtmxDetails


class AuthenticatedHttpRequest(HttpRequest):
    """A request in a ``@login_required`` view: its user is a real one."""

    user: User
    htmx: HtmxDetails


class EventStreamResponse(StreamingHttpResponse):
    """Server-Sent Events from an async generator, never buffered or compressed.

    Iterating through this class closes the view's generator as soon as the client goes away;
    Django alone would leave it to the garbage collector when the cancel lands inside ``send()``.
    """

    def __init__(self, events: AsyncIterator[str], **kwargs: Any) -> None:
        super().__init__(events, content_type="text/event-stream", **kwargs)
        self._events = events
        self["Cache-Control"] = "no-cache"
        self["X-Accel-Buffering"] = "no"

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in super().__aiter__():
                yield part
        finally:
            closer = getattr(self._events, "aclose", None)
            if closer is not None:
                await closer()


def sse(event: str, data: Any) -> str:
    """One SSE event with a JSON payload (JSON keeps newlines inside the data line)."""
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"
