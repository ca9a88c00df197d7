"""Every route refuses a body over its limit before reading it: the ASGI guard answers 413 as soon
as the headers declare too much, or as soon as a chunked body passes the limit. The routes are
walked from the URL configuration, so a new one cannot be left out."""

from __future__ import annotations

import re
import socket
import time

import pytest
from django.conf import settings
from django.urls import get_resolver

from assistant_project.asgi import UPLOAD_ROUTES, body_limit
from tests.conftest import AsgiServer
from tests.test_isolation_routes import walk

pytestmark = pytest.mark.slow

SAMPLE = {"int": "1", "string": "md", "slug": "x", "path": "x"}


def every_path() -> list[str]:
    paths = set()
    for route, _, pattern in walk(get_resolver().url_patterns):
        path = route
        for name, converter in pattern.pattern.converters.items():
            kind = type(converter).__name__.replace("Converter", "").lower()
            path = re.sub(rf"<(\w+:)?{name}>", SAMPLE[kind], path)
        if path.startswith("^") or "(?P" in path:  # regex routes (the admin's): one sample each
            path = re.sub(r"\(\?P<\w+>[^)]*\)", "1", path).lstrip("^").rstrip("$").replace("\\", "")
        paths.add("/" + path)
    return sorted(paths)


def declare(server: AsgiServer, path: str, length: int) -> tuple[bytes, float]:
    """Send only headers declaring ``length`` bytes; return the reply and how long it took."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {length}\r\n\r\n".encode()
        )
        reply = b""
        while b"\r\n\r\n" not in reply or b"}}" not in reply:
            data = sock.recv(4096)
            if not data:
                break
            reply += data
        return reply, time.monotonic() - started


def test_every_route_refuses_a_declared_oversized_body_at_once(asgi_server: AsgiServer) -> None:
    paths = every_path()
    assert len(paths) > 60 and "/audio/" in paths and "/v1/chat/completions" in paths
    slow_or_accepted = {}
    for path in paths:
        reply, seconds = declare(asgi_server, path, 10 * 2**30)
        if not reply.startswith(b"HTTP/1.1 413") or b"payload_too_large" not in reply or seconds > 2:
            slow_or_accepted[path] = (reply[:40], round(seconds, 2))
    assert slow_or_accepted == {}


def test_limits_are_per_route(asgi_server: AsgiServer) -> None:
    assert body_limit("/audio/") == body_limit("/api/v1/audio/transcriptions") > settings.AUDIO_MAX_BYTES
    assert body_limit("/v1/chat/completions") == settings.REQUEST_MAX_BYTES + 64 * 1024
    assert len(UPLOAD_ROUTES) == 4
    # Just over the default limit is refused; under it reaches Django (which refuses the bad form).
    over, _ = declare(asgi_server, "/v1/chat/completions", settings.REQUEST_MAX_BYTES + 64 * 1024 + 1)
    assert over.startswith(b"HTTP/1.1 413")


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(asgi_server: AsgiServer) -> None:
    limit = body_limit("/v1/audio/transcriptions")
    piece = b"x" * 2**20
    with socket.create_connection(("127.0.0.1", asgi_server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sent = 0
        reply = b""
        sock.settimeout(0.05)
        while sent < 4 * limit and b"payload_too_large" not in reply:
            try:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                sent += len(piece)
                reply += sock.recv(4096)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.settimeout(5)
        try:
            while b"payload_too_large" not in reply and (data := sock.recv(4096)):
                reply += data
        except OSError:
            pass
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert sent < limit + 8 * len(piece)  # stopped soon after the limit, not after the whole body
