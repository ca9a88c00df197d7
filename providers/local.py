"""The built-in ``local`` provider: offline engines as ordinary Router deployments.

Chat and embeddings are a LiteLLM custom provider (``local/...`` model strings, registered in
``litellm.custom_provider_map``). LiteLLM 1.110 has no custom-provider hook for transcription or
speech, so those are served by a small OpenAI-compatible endpoint that each process starts on
127.0.0.1 (a random port and token) the first time its Router needs it; local audio deployments
point there. Either way routing, retries, fallbacks, costs (zero) and analytics work unchanged.

The LiteLLM module is handed in by the gateway, which stays the only module that imports it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import local_engines as engines

logger = logging.getLogger(__name__)

PROVIDER = "local"

# The deployments `seed_local_models` creates: group, LiteLLM model string, mode, limits.
SEED: list[dict[str, Any]] = [
    {"model_group": "local-chat", "litellm_model": "local/smollm2-135m-instruct", "mode": "chat",
     "context_window": 2048, "max_output_tokens": 512},
    {"model_group": "local-embed", "litellm_model": "local/all-minilm-l6-v2", "mode": "embedding"},
    {"model_group": "local-stt", "litellm_model": "local/moonshine-base", "mode": "transcription"},
    {"model_group": "local-tts", "litellm_model": "local/piper-joe", "mode": "speech"},
]  # fmt: skip


def _usage(litellm: Any, prompt_tokens: int, completion_tokens: int = 0) -> Any:
    return litellm.Usage(
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens
    )


def _error(litellm: Any, exc: Exception) -> Exception:
    status = 503 if isinstance(exc, engines.EngineMissing) else 400 if isinstance(exc, engines.EngineError) else 500
    return litellm.llms.custom_llm.CustomLLMError(status_code=status, message=str(exc))  # type: ignore[no-any-return]


def _handler(litellm: Any) -> Any:
    class LocalLLM(litellm.CustomLLM):  # type: ignore[misc]
        """Chat and embeddings on the local engines (blocking work runs in threads)."""

        def completion(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
            model_response = kwargs.get("model_response") or args[2]
            optional_params = kwargs.get("optional_params") or {}
            try:
                piece = engines.chat_engine.get().complete(messages, optional_params)
            except Exception as exc:
                raise _error(litellm, exc) from None
            model_response.choices[0].message.content = piece.text
            model_response.choices[0].finish_reason = piece.finish_reason
            model_response.model = model
            model_response.usage = _usage(litellm, piece.prompt_tokens, piece.completion_tokens)
            return model_response

        async def acompletion(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(self.completion, model, messages, *args, **kwargs)

        def streaming(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
            optional_params = kwargs.get("optional_params") or {}
            try:
                for piece in engines.chat_engine.get().stream(messages, optional_params):
                    finished = piece.finish_reason is not None
                    yield {
                        "text": piece.text,
                        "is_finished": finished,
                        "finish_reason": piece.finish_reason or "",
                        "usage": {
                            "prompt_tokens": piece.prompt_tokens,
                            "completion_tokens": piece.completion_tokens,
                            "total_tokens": piece.prompt_tokens + piece.completion_tokens,
                        }
                        if finished
                        else None,
                        "index": 0,
                        "tool_use": None,
                    }
            except Exception as exc:
                raise _error(litellm, exc) from None

        async def astreaming(
            self, model: str, messages: list[Any], *args: Any, **kwargs: Any
        ) -> AsyncIterator[dict[str, Any]]:
            # llama.cpp blocks: generate in a thread and hand chunks to this loop as they come.
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
            stop = threading.Event()

            def produce() -> None:
                try:
                    for chunk in self.streaming(model, messages, *args, **kwargs):
                        if stop.is_set():
                            break
                        loop.call_soon_threadsafe(queue.put_nowait, ("chunk", chunk))
                except Exception as exc:
                    loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
                else:
                    loop.call_soon_threadsafe(queue.put_nowait, ("end", None))

            producer = loop.run_in_executor(None, produce)
            try:
                while True:
                    kind, value = await queue.get()
                    if kind == "chunk":
                        yield value
                    elif kind == "error":
                        raise value
                    else:
                        break
            finally:
                stop.set()  # an abandoned stream stops generating at the next token
                await asyncio.shield(producer)

        def embedding(self, model: str, input: list[Any], *args: Any, **kwargs: Any) -> Any:
            model_response = kwargs.get("model_response") or args[0]
            texts = [input] if isinstance(input, str) else list(input)
            try:
                vectors, tokens = engines.embedding_engine.get().embed([str(text) for text in texts])
            except Exception as exc:
                raise _error(litellm, exc) from None
            model_response.data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
            model_response.model = model
            model_response.usage = _usage(litellm, tokens)
            return model_response

        async def aembedding(self, model: str, input: list[Any], *args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(self.embedding, model, input, *args, **kwargs)

    return LocalLLM()


def register_local_provider(litellm: Any) -> None:
    """Make ``local/...`` model strings resolve to the local engines in this process."""
    entries = [entry for entry in (litellm.custom_provider_map or []) if entry.get("provider") != PROVIDER]
    litellm.custom_provider_map = [*entries, {"provider": PROVIDER, "custom_handler": _handler(litellm)}]


# --- The loopback audio endpoint ----------------------------------------------------------------


class _AudioServer(ThreadingHTTPServer):
    daemon_threads = True
    token = ""


def _audio_handler() -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        server: _AudioServer

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str) -> None:
            payload = {"error": {"message": message, "type": "local_engine_error", "param": None, "code": None}}
            self._send(status, json.dumps(payload).encode(), "application/json")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if not secrets.compare_digest(self.headers.get("Authorization", ""), f"Bearer {self.server.token}"):
                self._error(401, "This endpoint serves the platform's own gateway only.")
                return
            try:
                if self.path.endswith("/audio/transcriptions"):
                    self._transcribe(body)
                elif self.path.endswith("/audio/speech"):
                    self._speak(body)
                else:
                    self._error(404, f"No route {self.path}")
            except engines.EngineMissing as exc:
                self._error(503, str(exc))
            except engines.EngineError as exc:
                self._error(400, str(exc))
            except Exception:
                logger.exception("local audio engine failed")
                self._error(500, "The local audio engine failed.")

        def _transcribe(self, body: bytes) -> None:
            form = _parse_multipart(self.headers.get("Content-Type", ""), body)
            audio = form.get("file")
            if not isinstance(audio, bytes) or not audio:
                self._error(400, "No audio file was sent.")
                return
            transcript = engines.stt_engine.get().transcribe(audio)
            payload = {
                "text": transcript.text,
                "language": transcript.language,
                "duration": transcript.duration,
                "segments": transcript.segments,
            }
            self._send(200, json.dumps(payload).encode(), "application/json")

        def _speak(self, body: bytes) -> None:
            request = json.loads(body or b"{}")
            text = str(request.get("input") or "")
            if not text.strip():
                self._error(400, "There is no text to speak.")
                return
            audio, content_type = engines.tts_engine.get().speak(text, str(request.get("response_format") or "wav"))
            self._send(200, audio, content_type)

    return Handler


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    form: dict[str, Any] = {}
    if not message.is_multipart():
        return form
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            payload = payload if isinstance(payload, bytes) else b""
            form[name] = payload if part.get_filename() else payload.decode("utf-8", "replace")
    return form


_server_lock = threading.Lock()
_server: _AudioServer | None = None


def audio_endpoint() -> tuple[str, str]:
    """The base URL and token of this process's loopback audio endpoint, started on first use."""
    global _server
    with _server_lock:
        if _server is None:
            server = _AudioServer(("127.0.0.1", 0), _audio_handler())
            server.token = secrets.token_urlsafe(24)
            threading.Thread(target=server.serve_forever, name="local-audio", daemon=True).start()
            _server = server
            time.sleep(0)  # let the thread start accepting
        host, port = _server.server_address[:2]
        return f"http://{host!s}:{port}/v1", _server.token


def audio_params(model: str) -> dict[str, Any]:
    """LiteLLM parameters for a local transcription or speech deployment."""
    api_base, token = audio_endpoint()
    return {"model": f"openai/{model.split('/', 1)[-1]}", "api_base": api_base, "api_key": token}
