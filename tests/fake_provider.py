"""A fake LLM provider: a real HTTP server on 127.0.0.1 speaking the OpenAI API (and Cohere-style rerank).

Tests point deployments' ``api_base`` at it. Its behaviour is chosen by the model name, so a test
configures a failure the same way an operator configures a deployment:

==========================  =====================================================================
model name contains         behaviour
==========================  =====================================================================
``error-500``               HTTP 500
``rate-limit-retry``        HTTP 429 with ``Retry-After: 1``
``rate-limit``              HTTP 429 without Retry-After
``auth-error``              HTTP 401
``echo-key``                HTTP 401 whose message repeats the Authorization header, as real
                            providers echo (part of) a wrong key; for secret-scrubbing tests
``timeout``                 sleeps ``hang_seconds`` (default 30) before answering
``context-length``          HTTP 400 "maximum context length" error
``content-policy``          HTTP 400 "rejected as a result of the safety system" error
``stream-dies``             a stream that sends a few tokens, then drops the connection
``slow``                    streams one token every ``slow_delay`` seconds (default 0.3); an
                            embeddings request waits ``slow_delay`` before answering
==========================  =====================================================================

Anything else answers normally. ``FakeProvider.set_behaviour(model, name)`` overrides the behaviour
of one model name at run time (for a deployment that "starts failing"), and ``requests`` holds
every request received, for tests to inspect.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import struct
import threading
import time
import wave
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EMBEDDING_DIMENSIONS = 384
WORD_RE = re.compile(r"[a-z0-9]+")
DEFAULT_REPLY = "Hello! This is the fake provider answering your message."
TRANSCRIPT = "the quick brown fox jumps over the lazy dog"


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any = None
    form: dict[str, Any] = field(default_factory=dict)
    received_at: float = field(default_factory=time.monotonic)
    finished_at: float | None = None  # when the whole answer had been written (time.monotonic())

    @property
    def model(self) -> str | None:
        if isinstance(self.json, dict):
            return self.json.get("model")
        return self.form.get("model")


def embed_text(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic bag-of-words vector: texts sharing words are near each other."""
    vector = [0.0] * dimensions
    words = WORD_RE.findall(text.lower())
    for word in words:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % dimensions
        sign = 1.0 if digest[4] % 2 == 0 else -1.0
        vector[index] += sign
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [value / norm for value in vector]


def count_tokens(text: str) -> int:
    return max(1, len(text.split()))


def wav_bytes(seconds: float, rate: int = 16000) -> bytes:
    """A WAV file holding a quiet tone of the given length."""
    frames = int(seconds * rate)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(
            b"".join(struct.pack("<h", int(800 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(frames))
        )
    return buffer.getvalue()


def audio_duration(data: bytes) -> float:
    try:
        with wave.open(io.BytesIO(data)) as clip:
            return float(clip.getnframes()) / float(clip.getframerate())
    except (wave.Error, EOFError):
        return round(len(data) / 16000, 2)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many concurrent connections (benchmarks, load tests)


class FakeProvider:
    def __init__(self, *, slow_delay: float = 0.3, hang_seconds: float = 30.0) -> None:
        self.slow_delay = slow_delay
        self.hang_seconds = hang_seconds
        self.requests: list[RecordedRequest] = []
        self.reply = DEFAULT_REPLY
        self.transcript = TRANSCRIPT
        self._overrides: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-provider", daemon=True)

    # Lifecycle -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The host root (give this to Cohere-style rerank deployments)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """The OpenAI-style base URL."""
        return f"{self.url}/v1"

    def start(self) -> FakeProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Control ---------------------------------------------------------------------------------
    def set_behaviour(self, model: str, behaviour: str | None) -> None:
        with self._lock:
            if behaviour is None:
                self._overrides.pop(model, None)
            else:
                self._overrides[model] = behaviour

    def behaviour(self, model: str) -> str:
        with self._lock:
            if model in self._overrides:
                return self._overrides[model]
        for name in (
            "error-500",
            "rate-limit-retry",
            "rate-limit",
            "auth-error",
            "echo-key",
            "timeout",
            "context-length",
            "content-policy",
            "stream-dies",
            "slow",
        ):
            if name in model:
                return name
        return "ok"

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def requests_for(self, path_suffix: str = "", model: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            found = list(self.requests)
        return [r for r in found if r.path.endswith(path_suffix) and (model is None or r.model == model)]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._overrides.clear()
        self.reply = DEFAULT_REPLY
        self.transcript = TRANSCRIPT


def _handler_for(fake: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate writes
        server_version = "FakeProvider/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        # Plumbing ----------------------------------------------------------------------------
        def _read(self) -> RecordedRequest:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = RecordedRequest(
                method=self.command,
                path=self.path.split("?")[0],
                headers={key.lower(): value for key, value in self.headers.items()},
                body=body,
            )
            content_type = self.headers.get("Content-Type", "")
            if content_type.startswith("application/json") and body:
                request.json = json.loads(body)
            elif content_type.startswith("multipart/form-data"):
                request.form = _parse_multipart(content_type, body)
            fake.record(request)
            return request

        def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, error_type: str, headers: dict[str, str] | None = None) -> None:
            self._send_json(
                status, {"error": {"message": message, "type": error_type, "param": None, "code": None}}, headers
            )

        def _fail_if_asked(self, model: str) -> bool:
            """Answer with the failure the model name asks for; True when the request is done."""
            behaviour = fake.behaviour(model)
            if behaviour == "error-500":
                self._error(500, "The fake provider had an internal error.", "server_error")
            elif behaviour == "rate-limit-retry":
                self._error(429, "Rate limit reached for requests.", "rate_limit_error", {"Retry-After": "1"})
            elif behaviour == "rate-limit":
                self._error(429, "Rate limit reached for requests.", "rate_limit_error")
            elif behaviour == "auth-error":
                self._error(401, "Incorrect API key provided.", "invalid_request_error")
            elif behaviour == "echo-key":
                self._error(401, f"Incorrect API key provided: {self.headers.get('Authorization')}.", "auth_error")
            elif behaviour == "context-length":
                self._error(
                    400,
                    "This model's maximum context length is 4096 tokens. However, your messages resulted in "
                    "9000 tokens. Please reduce the length of the messages.",
                    "invalid_request_error",
                )
            elif behaviour == "content-policy":
                self._error(
                    400,
                    "Your request was rejected as a result of the safety system. Your prompt may contain text "
                    "that is not allowed by our safety system.",
                    "invalid_request_error",
                )
            elif behaviour == "timeout":
                time.sleep(fake.hang_seconds)
                self._error(504, "The fake provider hung and gave up.", "timeout")
            else:
                return False
            return True

        def do_GET(self) -> None:
            request = self._read()
            if request.path.endswith("/models"):
                self._send_json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
            else:
                self._error(404, f"No route {request.path}", "not_found")

        def do_POST(self) -> None:
            request = self._read()
            path = request.path
            model = request.model or ""
            try:
                if self._fail_if_asked(model):
                    return
                if path.endswith("/chat/completions"):
                    self._chat(request)
                elif path.endswith("/embeddings"):
                    self._embeddings(request)
                elif path.endswith("/rerank"):
                    self._rerank(request)
                elif path.endswith("/audio/transcriptions"):
                    self._transcription(request)
                elif path.endswith("/audio/speech"):
                    self._speech(request)
                else:
                    self._error(404, f"No route {path}", "not_found")
            except (BrokenPipeError, ConnectionResetError):
                pass

        # Endpoints ---------------------------------------------------------------------------
        def _chat(self, request: RecordedRequest) -> None:
            body = request.json or {}
            model = body.get("model", "")
            messages = body.get("messages", [])
            prompt_tokens = sum(count_tokens(str(m.get("content") or "")) for m in messages)
            reply = fake.reply
            completion_tokens = count_tokens(reply)
            created = int(time.time())
            completion_id = f"chatcmpl-{hashlib.md5(request.body, usedforsecurity=False).hexdigest()[:12]}"
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            if not body.get("stream"):
                self._send_json(
                    200,
                    {
                        "id": completion_id,
                        "object": "chat.completion",
                        "created": created,
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": reply},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": usage,
                    },
                )
                return
            behaviour = fake.behaviour(model)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

            def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> None:
                payload = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    **extra,
                }
                self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
                self.wfile.flush()

            chunk({"role": "assistant", "content": ""})
            pieces = re.findall(r"\S+\s*", reply)
            for position, piece in enumerate(pieces):
                if behaviour == "stream-dies" and position == 3:
                    # Drop the connection mid-stream, without a terminating chunk.
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                if behaviour == "slow":
                    time.sleep(fake.slow_delay)
                chunk({"content": piece})
            chunk({}, "stop")
            if (body.get("stream_options") or {}).get("include_usage"):
                payload = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
                self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            request.finished_at = time.monotonic()

        def _embeddings(self, request: RecordedRequest) -> None:
            body = request.json or {}
            if fake.behaviour(str(body.get("model", ""))) == "slow":
                time.sleep(fake.slow_delay)
            inputs = body.get("input", [])
            if isinstance(inputs, str):
                inputs = [inputs]
            dimensions = int(body.get("dimensions") or EMBEDDING_DIMENSIONS)
            tokens = sum(count_tokens(str(text)) for text in inputs)
            self._send_json(
                200,
                {
                    "object": "list",
                    "model": body.get("model"),
                    "data": [
                        {"object": "embedding", "index": i, "embedding": embed_text(str(text), dimensions)}
                        for i, text in enumerate(inputs)
                    ],
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                },
            )

        def _rerank(self, request: RecordedRequest) -> None:
            body = request.json or {}
            query_words = set(WORD_RE.findall(str(body.get("query", "")).lower()))
            documents = body.get("documents", [])
            scored = []
            for index, document in enumerate(documents):
                text = document.get("text", "") if isinstance(document, dict) else str(document)
                words = set(WORD_RE.findall(text.lower()))
                overlap = len(query_words & words) / (len(query_words) or 1)
                scored.append({"index": index, "relevance_score": round(overlap, 6)})
            scored.sort(key=lambda item: (-item["relevance_score"], item["index"]))
            top_n = body.get("top_n") or len(scored)
            self._send_json(
                200,
                {
                    "id": "rerank-fake",
                    "results": scored[:top_n],
                    "meta": {"billed_units": {"search_units": 1}},
                },
            )

        def _transcription(self, request: RecordedRequest) -> None:
            upload = request.form.get("file")
            data = upload if isinstance(upload, bytes) else b""
            if not data:
                self._error(400, "No audio file was sent.", "invalid_request_error")
                return
            duration = audio_duration(data)
            words = fake.transcript.split()
            step = duration / max(1, len(words))
            self._send_json(
                200,
                {
                    "text": fake.transcript,
                    "language": request.form.get("language") or "english",
                    "duration": duration,
                    "segments": [
                        {
                            "id": 0,
                            "start": 0.0,
                            "end": round(duration, 3),
                            "text": fake.transcript,
                        }
                    ],
                    "words": [
                        {"word": word, "start": round(i * step, 3), "end": round((i + 1) * step, 3)}
                        for i, word in enumerate(words)
                    ],
                },
            )

        def _speech(self, request: RecordedRequest) -> None:
            body = request.json or {}
            text = str(body.get("input", ""))
            audio = wav_bytes(min(5.0, 0.05 * max(1, len(text))))
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Content-Length", str(len(audio)))
            self.end_headers()
            self.wfile.write(audio)

    return Handler


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    form: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            payload = b""
        if part.get_filename():
            form[name] = payload
            form[f"{name}.filename"] = part.get_filename()
        else:
            form[name] = payload.decode("utf-8", "replace")
    return form


if __name__ == "__main__":  # pragma: no cover - handy for trying the fake by hand
    with FakeProvider() as server:
        print(f"fake provider on {server.api_base}", flush=True)
        threading.Event().wait()
