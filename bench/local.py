"""The offline engines' speed on this machine: load time and memory of each, chat tokens per second,
embeddings per second, speech-to-text real-time factor and seconds per spoken sentence.

    .venv/bin/python -m bench.local

It calls the engines directly (no database, no Router), as the gateway's local provider does.
"""

from __future__ import annotations

import io
import os
import statistics
import time
import wave
from typing import Any

import psutil

from providers import local_engines

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Offline models keep working when the network is gone.",
    "Please summarise the attached report in three bullet points.",
    "The meeting has been moved to Thursday at ten in the morning.",
    "Our platform routes every request through one gateway.",
]


def rss_mib() -> float:
    return float(psutil.Process(os.getpid()).memory_info().rss) / 2**20


def load(engine: local_engines._Once[Any], name: str) -> Any:
    before = rss_mib()
    value = engine.get()
    print(f"{name:15} load {engine.load_seconds:5.2f} s   memory +{rss_mib() - before:6.1f} MiB")
    return value


def main() -> None:
    print(f"{os.cpu_count()} CPU cores; process starts at {rss_mib():.0f} MiB")
    embedder = load(local_engines.embedding_engine, "embeddings")
    speaker = load(local_engines.tts_engine, "text to speech")
    listener = load(local_engines.stt_engine, "speech to text")
    chat = load(local_engines.chat_engine, "chat")
    print()

    texts = [f"{sentence} ({index})" for index in range(64) for sentence in SENTENCES][:256]
    embedder.embed(texts[:8])
    started = time.perf_counter()
    embedder.embed(texts)
    elapsed = time.perf_counter() - started
    print(f"embeddings      {len(texts) / elapsed:7.0f} sentences/s (batch of {len(texts)})")

    per_sentence, clips = [], []
    for sentence in SENTENCES:
        started = time.perf_counter()
        audio, _ = speaker.speak(sentence)
        per_sentence.append(time.perf_counter() - started)
        clips.append(audio)
    print(f"text to speech  {statistics.median(per_sentence):7.2f} s per sentence (median of {len(SENTENCES)})")

    factors = []
    for clip in clips:
        with wave.open(io.BytesIO(clip)) as reader:
            seconds = reader.getnframes() / reader.getframerate()
        started = time.perf_counter()
        listener.transcribe(clip)
        factors.append((time.perf_counter() - started) / seconds)
    print(f"speech to text  {statistics.median(factors):7.2f} x real time (median; below 1 is faster than speech)")

    prompt = [{"role": "user", "content": "Explain in a few sentences why the sky is blue."}]
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        first = None
        count = 0
        for piece in chat.stream(prompt, {"max_tokens": 96, "temperature": 0.2}):
            if piece.text:
                first = first or time.perf_counter()
                count += 1
        if first is not None and count > 1:
            rates.append((count - 1) / (time.perf_counter() - first))
    print(f"chat            {statistics.median(rates):7.1f} tokens/s (median of 3 answers of up to 96 tokens)")
    print(f"\nprocess ends at {rss_mib():.0f} MiB with all four engines loaded")


if __name__ == "__main__":
    main()
