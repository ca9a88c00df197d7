"""Analytics at scale: 1,000,000 call records over 90 days, 20 model groups and 100 users, then
each dashboard view and API route timed (target: p95 under 200 ms each).

    .venv/bin/python -m assistant_project.devservices with-services -- .venv/bin/python -m bench.analytics
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import statistics
import time
import uuid

import django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant_project.settings")
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from analytics import queries
    from analytics.models import LLMCall

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    users = [get_user_model().objects.get_or_create(username=f"bench-user-{i}")[0] for i in range(100)]
    staff, _ = get_user_model().objects.get_or_create(username="bench-staff", defaults={"is_staff": True})
    models = [f"model-{i}" for i in range(20)]
    providers = ["openai", "anthropic", "gemini", "cohere", "local"]
    if LLMCall.objects.count() < args.rows:
        rng = random.Random(1)
        now = timezone.now()
        started = time.perf_counter()
        columns = [
            "created_at",
            "trace_id",
            "attempt",
            "user_id",
            "app",
            "call_type",
            "model_group",
            "requested_group",
            "provider",
            "model",
            "status",
            "is_fallback",
            "error_type",
            "error_message",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "audio_seconds",
            "characters",
            "cost",
            "latency_ms",
            "ttft_ms",
            "final",
        ]
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY analytics_llmcall ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for i in range(args.rows):
                model = models[i % 20]
                failed = rng.random() < 0.04
                prompt, completion = rng.randint(10, 2000), rng.randint(5, 800)
                copy.write_row(
                    (
                        now - datetime.timedelta(seconds=rng.uniform(0, 90 * 86400)),
                        uuid.uuid4().hex,
                        1,
                        users[i % 100].pk,
                        rng.choice(["chat", "documents", "audio", "api"]),
                        "chat",
                        model,
                        model,
                        providers[i % 5],
                        f"{providers[i % 5]}/{model}",
                        "failure" if failed else "success",
                        False,
                        "RateLimitError" if failed else "",
                        "",
                        0 if failed else prompt,
                        0 if failed else completion,
                        0 if failed else prompt + completion,
                        0,
                        0,
                        0 if failed else (prompt * 2 + completion * 6) / 1e6,
                        rng.lognormvariate(6, 0.6),
                        None if failed else rng.lognormvariate(5, 0.5),
                        True,
                    )
                )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE analytics_llmcall")
        print(f"seeded {args.rows:,} calls in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        hours = queries.rollup()
        print(f"rolled up {hours:,} hours in {time.perf_counter() - started:.0f} s")

    staff_client, user_client = Client(HTTP_HOST="localhost"), Client(HTTP_HOST="localhost")
    staff_client.force_login(staff)
    user_client.force_login(users[7])
    routes = [
        ("dashboard 24h (staff)", staff_client, "/analytics/?time_range=24h"),
        ("dashboard 7d (staff)", staff_client, "/analytics/?time_range=7d"),
        ("dashboard 30d by model (staff)", staff_client, "/analytics/?time_range=30d&group_by=model"),
        ("dashboard 30d (user)", user_client, "/analytics/?time_range=30d"),
        ("dashboard refresh (htmx)", staff_client, "/analytics/?time_range=7d&group_by=user"),
        ("API costs 30d by provider", staff_client, "/api/v1/analytics/costs?time_range=30d&group_by=provider"),
        ("API costs 30d by day", staff_client, "/api/v1/analytics/costs?time_range=30d&group_by=day"),
        ("API costs 30d by user", staff_client, "/api/v1/analytics/costs?time_range=30d&group_by=user"),
        ("API costs 7d by model (user)", user_client, "/api/v1/analytics/costs?time_range=7d&group_by=model"),
        ("API performance 30d", staff_client, "/api/v1/analytics/performance?time_range=30d"),
        ("API provider health", staff_client, "/api/v1/analytics/provider-health"),
        ("/metrics", staff_client, "/metrics"),
    ]
    print(f"\n{'route':34} {'p50 ms':>8} {'p95 ms':>8}   (target p95 < 200 ms)")
    for label, client, url in routes:
        headers = {"HX-Request": "true"} if "htmx" in label else {}
        timings = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            response = client.get(url, headers=headers)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        timings.sort()
        print(f"{label:34} {statistics.median(timings):8.1f} {timings[int(0.95 * (len(timings) - 1))]:8.1f}")


if __name__ == "__main__":
    main()
