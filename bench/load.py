"""Load: 100 chats streaming at once, back to back, for 60 s, plus a steady rate of other API calls,
against the app under uvicorn (one process, as one production replica) with the fake provider (in its
own process) behind. The same streams against the fake provider directly are the baseline. The
platform run is made twice; the server's memory is read before and after each.

    .venv/bin/python -m assistant_project.devservices with-services -- .venv/bin/python -m bench.load
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import django
import httpx
import psutil

from bench.chat import ROOT, free_port, serve

REPLY_WORDS = 40
TOKEN_DELAY = 0.02  # seconds between the fake provider's tokens: a 0.8 s answer
FAKE = f"""
import sys, time
from tests.fake_provider import FakeProvider
fake = FakeProvider(slow_delay={TOKEN_DELAY}).start()
fake.reply = " ".join(f"word{{n}}" for n in range({REPLY_WORDS}))
print(fake.api_base, flush=True)
while True:
    time.sleep(3600)
"""


@dataclass
class Tally:
    stream_seconds: list[float] = field(default_factory=list)
    first_token: list[float] = field(default_factory=list)
    tokens: int = 0
    api_seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def read_stream(response: httpx.Response, tally: Tally, started: float, done_event: str) -> bool:
    """Count token events; True when the stream ended properly."""
    event = ""
    first = True
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            if line == "data: [DONE]":
                return True
            data = line[6:]
            if event == "error":
                tally.errors.append(f"error event: {data[:200]}")
                return False
            if event == done_event:
                return True
            if event == "token" or (not event and '"content"' in data):
                if first:
                    tally.first_token.append(time.monotonic() - started)
                    first = False
                tally.tokens += 1
    return False


async def streamer(client: httpx.AsyncClient, target: dict[str, Any], until: float, tally: Tally) -> None:
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            async with client.stream("POST", target["url"], json=target["body"], headers=target["headers"]) as r:
                if r.status_code != 200:
                    tally.errors.append(f"stream status {r.status_code}: {(await r.aread())[:200]!r}")
                    continue
                if await read_stream(r, tally, started, target["done"]):
                    tally.stream_seconds.append(time.monotonic() - started)
                else:
                    tally.errors.append("stream ended without done")
        except httpx.HTTPError as exc:
            tally.errors.append(f"stream {type(exc).__name__}: {exc}")


async def api_caller(
    client: httpx.AsyncClient, calls: list[dict[str, Any]], rate: float, until: float, tally: Tally
) -> None:
    """``rate`` calls per second, round robin over ``calls``, each in its own task (open loop)."""

    async def one(call: dict[str, Any]) -> None:
        started = time.monotonic()
        try:
            response = await client.request(call["method"], call["url"], json=call.get("json"), headers=call["headers"])
            if response.status_code != 200:
                tally.errors.append(f"{call['method']} {call['url']}: {response.status_code} {response.text[:200]}")
            else:
                tally.api_seconds.append(time.monotonic() - started)
        except httpx.HTTPError as exc:
            tally.errors.append(f"{call['url']} {type(exc).__name__}: {exc}")

    tasks = []
    number = 0
    next_at = time.monotonic()
    while next_at < until:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        tasks.append(asyncio.ensure_future(one(calls[number % len(calls)])))
        number += 1
        next_at += 1 / rate
    await asyncio.gather(*tasks)


async def run(targets: list[dict[str, Any]], calls: list[dict[str, Any]], seconds: float, rate: float) -> Tally:
    tally = Tally()
    limits = httpx.Limits(max_connections=len(targets) + 100, max_keepalive_connections=len(targets) + 100)
    transport = httpx.AsyncHTTPTransport(limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    async with httpx.AsyncClient(timeout=120, transport=transport) as client:
        until = time.monotonic() + seconds
        jobs = [streamer(client, target, until, tally) for target in targets]
        if calls:
            jobs.append(api_caller(client, calls, rate, until, tally))
        await asyncio.gather(*jobs)
    return tally


def report(name: str, tally: Tally, seconds: float, memory: tuple[int, int] | None = None) -> dict[str, Any]:
    row = {
        "run": name,
        "streams": len(tally.stream_seconds),
        "streams_per_s": round(len(tally.stream_seconds) / seconds, 1),
        "tokens_per_s": round(tally.tokens / seconds, 0),
        "stream_p50_ms": round(pct(tally.stream_seconds, 0.5), 0),
        "stream_p95_ms": round(pct(tally.stream_seconds, 0.95), 0),
        "first_token_p50_ms": round(pct(tally.first_token, 0.5), 0),
        "first_token_p95_ms": round(pct(tally.first_token, 0.95), 0),
        "api_calls": len(tally.api_seconds),
        "api_p50_ms": round(pct(tally.api_seconds, 0.5), 1),
        "api_p95_ms": round(pct(tally.api_seconds, 0.95), 1),
        "errors": len(tally.errors),
    }
    if memory:
        row["server_rss_mb_start"] = round(memory[0] / 2**20, 1)
        row["server_rss_mb_end"] = round(memory[1] / 2**20, 1)
    print(json.dumps(row), flush=True)
    for error in tally.errors[:5]:
        print("   ", error, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--api-rate", type=float, default=10, help="other API calls per second")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant_project.settings")
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from assistant_project.accounts.models import ApiKey
    from chat.models import Conversation
    from providers.models import Deployment, Provider

    call_command("migrate", verbosity=0)
    fake_process = subprocess.Popen([sys.executable, "-c", FAKE], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert fake_process.stdout is not None
    fake_base = fake_process.stdout.readline().strip()
    provider, _ = Provider.objects.update_or_create(
        name="bench-load", defaults={"kind": "openai_compatible", "api_base": fake_base}
    )
    Deployment.objects.update_or_create(
        model_group="bench-load", defaults={"litellm_model": "openai/slow-load", "provider": provider}
    )
    users = [get_user_model().objects.get_or_create(username=f"load{n}")[0] for n in range(args.streams)]
    keys = [ApiKey.issue(user, "load")[1] for user in users]

    port = free_port()
    server = serve(port, "--timeout-graceful-shutdown", "20")
    base = f"http://127.0.0.1:{port}"
    body: dict[str, Any] = {"model": "slow-load", "messages": [{"role": "user", "content": "rivers?"}], "stream": True}
    direct = [
        {"url": f"{fake_base}/chat/completions", "body": body, "headers": {}, "done": "[DONE]"}
        for _ in range(args.streams)
    ]
    calls: list[dict[str, Any]] = [
        {"method": "GET", "url": f"{base}/api/v1/me"},
        {"method": "GET", "url": f"{base}/api/v1/chat/conversations"},
        {"method": "GET", "url": f"{base}/api/v1/analytics/costs?time_range=24h"},
        {
            "method": "POST",
            "url": f"{base}/v1/chat/completions",
            "json": {**body, "model": "bench-load", "stream": False},
        },
    ]
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/accounts/login/", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        rows = [report("fake provider directly", asyncio.run(run(direct, [], args.seconds, 0)), args.seconds)]
        process = psutil.Process(server.pid)
        for number in (1, 2):
            conversations = [Conversation.objects.create(owner=user, model_group="bench-load") for user in users]
            targets = [
                {
                    "url": f"{base}/api/v1/chat/conversations/{conversation.pk}/messages/stream",
                    "body": {"message": "tell me about rivers"},
                    "headers": {"Authorization": f"Bearer {key}"},
                    "done": "done",
                }
                for conversation, key in zip(conversations, keys, strict=True)
            ]
            api = [
                {**call, "headers": {"Authorization": f"Bearer {keys[n % len(keys)]}"}} for n, call in enumerate(calls)
            ]
            start_rss, start_cpu = process.memory_info().rss, sum(process.cpu_times()[:2])
            tally = asyncio.run(run(targets, api, args.seconds, args.api_rate))
            cpu = sum(process.cpu_times()[:2]) - start_cpu
            time.sleep(2)  # streams finish their final saves
            row = report(f"platform, run {number}", tally, args.seconds, (start_rss, process.memory_info().rss))
            per_request = cpu / max(1, row["streams"] + row["api_calls"]) * 1000
            print(f"    server CPU {cpu:.1f} s in {args.seconds:.0f} s: {per_request:.1f} ms per request", flush=True)
            rows.append(row)
        baseline, first, second = rows
        growth = (second["server_rss_mb_end"] - first["server_rss_mb_end"]) / first["server_rss_mb_end"]
        print(
            f"stream p50 {first['stream_p50_ms']:.0f} ms vs {baseline['stream_p50_ms']:.0f} ms direct "
            f"({first['stream_p50_ms'] / baseline['stream_p50_ms']:.2f}x); "
            f"throughput {first['streams_per_s']} vs {baseline['streams_per_s']} streams/s "
            f"({first['streams_per_s'] / baseline['streams_per_s']:.2f}x); "
            f"errors {first['errors']} + {second['errors']}; "
            f"server memory growth across the second run {growth:+.1%} (target under 10%)",
            flush=True,
        )
        print("median API latency across runs:", statistics.median([first["api_p50_ms"], second["api_p50_ms"]]), "ms")
    finally:
        server.terminate()
        server.wait(30)
        fake_process.kill()


if __name__ == "__main__":
    main()
