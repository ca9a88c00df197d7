"""Ingestion speed: a generated 100-page PDF, extracted and chunked (target: at most 10 s), then
embedded through the gateway with the local model.

    .venv/bin/python -m assistant_project.devservices with-services -- .venv/bin/python -m bench.ingest
"""

from __future__ import annotations

import os
import time

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant_project.settings")
    django.setup()
    from django.core.management import call_command

    from documents.extraction import chunk, extract
    from providers import gateway
    from tests.documents_files import make_pdf

    call_command("migrate", verbosity=0)
    call_command("seed_local_models", verbosity=0)
    words = [
        "platform",
        "gateway",
        "provider",
        "routing",
        "fallback",
        "budget",
        "document",
        "passage",
        "citation",
        "answer",
        "model",
        "token",
        "latency",
        "stream",
        "embedding",
        "vector",
        "search",
        "rerank",
        "audio",
        "speech",
        "transcript",
    ]
    pages = []
    for number in range(100):
        lines = [
            " ".join(words[(number * 7 + line * 3 + k) % len(words)] for k in range(12)).capitalize() + "."
            for line in range(45)
        ]
        pages.append("\n".join(lines))
    data = make_pdf(pages)
    print(f"PDF: 100 pages, {len(data) / 1024:.0f} KiB, {sum(len(p.split()) for p in pages):,} words")

    gateway.count_tokens("warm up the tokenizer")
    started = time.perf_counter()
    extracted = extract("pdf", data)
    extracted_at = time.perf_counter()
    chunks = chunk(extracted, gateway.count_tokens, 300, 50)
    chunked_at = time.perf_counter()
    print(
        f"extraction {extracted_at - started:.2f} s, chunking {chunked_at - extracted_at:.2f} s, "
        f"total {chunked_at - started:.2f} s (target 10 s): {len(chunks)} chunks of up to 300 tokens"
    )

    context = gateway.CallContext(app="documents")
    gateway.embed("local-embed", ["warm up"], context=context)
    started = time.perf_counter()
    for start in range(0, len(chunks), 32):
        gateway.embed("local-embed", [c.text for c in chunks[start : start + 32]], context=context)
    elapsed = time.perf_counter() - started
    print(
        f"embedding through the gateway (local-embed, batches of 32): {len(chunks) / elapsed:.0f} chunks/s, "
        f"{elapsed:.1f} s for the document"
    )


if __name__ == "__main__":
    main()
