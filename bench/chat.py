"""Chat overhead: the platform's API against the bare gateway and the fake provider, side by side.

Run with private services (nothing of yours is touched):

    .venv/bin/python -m assistant_project.devservices with-services -- .venv/bin/python -m bench.chat

For each of non-streamed and streamed chat, at concurrency 1 and 20, it sends the same requests
(200 by default) three ways: straight to the fake provider over HTTP, through the gateway in this
process (no HTTP, no Django), and through the platform's API under uvicorn (HTTP, Django, auth,
the database writes of a chat turn). It prints p50/p95 latency and time to first token, and the
ratios against the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import django
import httpx

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Sample:
    latency_ms: float
    ttft_ms: float | None


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def run(count: int, concurrency: int, one: Callable[[], Awaitable[Sample]]) -> list[Sample]:
    samples: list[Sample] = []
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            queue.pop()
            samples.append(await one())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


def summary(samples: list[Sample]) -> dict[str, float]:
    latencies = [s.latency_ms for s in samples]
    ttfts = [s.ttft_ms for s in samples if s.ttft_ms is not None]
    return {
        "p50": statistics.median(latencies),
        "p95": percentile(latencies, 0.95),
        "ttft_p50": statistics.median(ttfts) if ttfts else -1.0,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(port: int, *extra: str) -> subprocess.Popen[bytes]:
    """The app under uvicorn, as in production, its request log (a JSON line a request) discarded."""
    command = [sys.executable, "-m", "uvicorn", "assistant_project.asgi:application", "--port", str(port)]
    return subprocess.Popen(
        [*command, "--lifespan", "off", "--no-access-log", "--log-level", "warning", *extra],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant_project.settings")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    from django.contrib.auth import get_user_model

    from assistant_project.accounts.models import ApiKey
    from chat.models import Conversation
    from providers import gateway
    from providers.models import Deployment, Provider
    from tests.fake_provider import FakeProvider

    fake = FakeProvider().start()
    provider, _ = Provider.objects.update_or_create(
        name="bench-fake", defaults={"kind": "openai_compatible", "api_base": fake.api_base}
    )
    Deployment.objects.get_or_create(model_group="bench", litellm_model="openai/bench-model", provider=provider)
    user, _ = get_user_model().objects.get_or_create(username="bench")
    _, key = ApiKey.issue(user, "bench")
    headers = {"Authorization": f"Bearer {key}"}
    conversations = [Conversation.objects.create(owner=user, model_group="bench") for _ in range(20)]

    port = free_port()
    server = serve(port)
    base = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(measure(args.requests, fake.api_base, base, headers, conversations, gateway))
    finally:
        server.terminate()
        server.wait(10)
        fake.stop()


async def measure(count, fake_base, base, headers, conversations, gateway) -> None:  # type: ignore[no-untyped-def]
    context = gateway.CallContext(app="api")
    messages = [{"role": "user", "content": "hello there"}]
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    # Without TCP_NODELAY a POST's body waits for the ACK of its headers: 40 ms of delayed ACK.
    transport = httpx.AsyncHTTPTransport(limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    async with httpx.AsyncClient(timeout=60, transport=transport) as client:
        for _ in range(30):  # the server is up and its gateway warm
            try:
                await client.get(f"{base}/accounts/login/")
                break
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
        turn = 0

        def conversation_url() -> str:
            nonlocal turn
            turn += 1
            return f"{base}/api/v1/chat/conversations/{conversations[turn % len(conversations)].pk}/messages"

        async def provider_plain() -> Sample:
            started = time.perf_counter()
            response = await client.post(
                f"{fake_base}/chat/completions", json={"model": "bench-model", "messages": messages}
            )
            response.raise_for_status()
            return Sample((time.perf_counter() - started) * 1000, None)

        async def provider_stream() -> Sample:
            started = time.perf_counter()
            first = None
            body = {
                "model": "bench-model",
                "messages": messages,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            async with client.stream("POST", f"{fake_base}/chat/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if first is None and '"content": "' in line and '"content": ""' not in line:
                        first = time.perf_counter()
            return Sample((time.perf_counter() - started) * 1000, ((first or started) - started) * 1000)

        async def gateway_plain() -> Sample:
            started = time.perf_counter()
            await gateway.achat("bench", messages, context=context)
            return Sample((time.perf_counter() - started) * 1000, None)

        async def gateway_stream() -> Sample:
            started = time.perf_counter()
            first = None
            async for _ in gateway.astream_chat("bench", messages, context=context):
                first = first or time.perf_counter()
            return Sample((time.perf_counter() - started) * 1000, ((first or started) - started) * 1000)

        async def platform_plain() -> Sample:
            started = time.perf_counter()
            response = await client.post(conversation_url(), json={"message": "hello there"}, headers=headers)
            response.raise_for_status()
            return Sample((time.perf_counter() - started) * 1000, None)

        async def platform_stream() -> Sample:
            started = time.perf_counter()
            first = None
            async with client.stream(
                "POST", conversation_url() + "/stream", json={"message": "hello there"}, headers=headers
            ) as response:
                async for line in response.aiter_lines():
                    if first is None and line.startswith("event: token"):
                        first = time.perf_counter()
            return Sample((time.perf_counter() - started) * 1000, ((first or started) - started) * 1000)

        await run(20, 4, gateway_plain)
        await run(20, 4, platform_plain)
        await run(10, 2, platform_stream)
        print(f"{count} requests each; latency in ms (p50 / p95), time to first token p50; ratio = p50 / gateway p50")
        for label, ways in (
            ("non-streamed", (("provider", provider_plain), ("gateway", gateway_plain), ("platform", platform_plain))),
            ("streamed", (("provider", provider_stream), ("gateway", gateway_stream), ("platform", platform_stream))),
        ):
            for concurrency in (1, 20):
                results = {name: summary(await run(count, concurrency, one)) for name, one in ways}
                gateway_p50 = results["gateway"]["p50"]
                print(f"\n{label}, concurrency {concurrency}")
                for name, figures in results.items():
                    ttft = f"  ttft {figures['ttft_p50']:.1f}" if figures["ttft_p50"] >= 0 else ""
                    print(
                        f"  {name:9} p50 {figures['p50']:7.1f}  p95 {figures['p95']:7.1f}{ttft}"
                        f"  ratio {figures['p50'] / gateway_p50:5.2f}"
                    )
                added = results["platform"]["p50"] - gateway_p50
                print(f"  platform adds {added:.1f} ms p50 over the gateway")


if __name__ == "__main__":
    main()
