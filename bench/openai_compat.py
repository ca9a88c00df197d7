"""The OpenAI-compatible API against the fake provider called directly, side by side: the same
requests (200 by default), streamed and not, at concurrency 1 and 20.

    .venv/bin/python -m assistant_project.devservices with-services -- .venv/bin/python -m bench.openai_compat
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import time

import django
import httpx

from bench.chat import Sample, free_port, run, serve, summary

BODY = {"model": "bench", "messages": [{"role": "user", "content": "hello there"}]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant_project.settings")
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from assistant_project.accounts.models import ApiKey
    from providers.models import Deployment, Provider
    from tests.fake_provider import FakeProvider

    call_command("migrate", verbosity=0)
    fake = FakeProvider().start()
    provider, _ = Provider.objects.update_or_create(
        name="bench-fake", defaults={"kind": "openai_compatible", "api_base": fake.api_base}
    )
    Deployment.objects.get_or_create(model_group="bench", litellm_model="openai/bench", provider=provider)
    user, _ = get_user_model().objects.get_or_create(username="bench-openai")
    _, key = ApiKey.issue(user, "bench")
    port = free_port()
    server = serve(port)
    try:
        asyncio.run(measure(args.requests, fake.api_base, f"http://127.0.0.1:{port}/v1", key))
    finally:
        server.terminate()
        server.wait(10)
        fake.stop()


async def measure(count: int, fake_base: str, platform_base: str, key: str) -> None:
    transport = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=50),
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    async with httpx.AsyncClient(timeout=60, transport=transport) as client:
        for _ in range(50):
            try:
                await client.get(f"{platform_base}/models", headers={"Authorization": f"Bearer {key}"})
                break
            except httpx.HTTPError:
                await asyncio.sleep(0.2)

        def plain(base: str, headers: dict[str, str]):  # type: ignore[no-untyped-def]
            async def one() -> Sample:
                started = time.perf_counter()
                response = await client.post(f"{base}/chat/completions", json=BODY, headers=headers)
                response.raise_for_status()
                return Sample((time.perf_counter() - started) * 1000, None)

            return one

        def streamed(base: str, headers: dict[str, str]):  # type: ignore[no-untyped-def]
            async def one() -> Sample:
                started = time.perf_counter()
                first = None
                body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
                async with client.stream("POST", f"{base}/chat/completions", json=body, headers=headers) as response:
                    async for line in response.aiter_lines():
                        if first is None and '"content": "' in line and '"content": ""' not in line:
                            first = time.perf_counter()
                return Sample((time.perf_counter() - started) * 1000, ((first or started) - started) * 1000)

            return one

        auth = {"Authorization": f"Bearer {key}"}
        await run(20, 4, plain(platform_base, auth))
        await run(20, 4, streamed(platform_base, auth))
        print(f"{count} requests each; ms (p50 / p95), time to first token p50; ratio = platform / provider p50")
        for label, make in (("non-streamed", plain), ("streamed", streamed)):
            for concurrency in (1, 20):
                provider = summary(await run(count, concurrency, make(fake_base, {})))
                platform = summary(await run(count, concurrency, make(platform_base, auth)))
                print(f"\n{label}, concurrency {concurrency}")
                for name, figures in (("provider", provider), ("platform", platform)):
                    ttft = f"  ttft {figures['ttft_p50']:.1f}" if figures["ttft_p50"] >= 0 else ""
                    print(f"  {name:9} p50 {figures['p50']:7.1f}  p95 {figures['p95']:7.1f}{ttft}")
                added = platform["p50"] - provider["p50"]
                print(f"  ratio {platform['p50'] / provider['p50']:.1f}, platform adds {added:.1f} ms p50")


if __name__ == "__main__":
    main()
