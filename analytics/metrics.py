"""Prometheus metrics computed from the database at scrape time (roll-ups plus recent rows), so
every web and worker process's calls are counted, whichever process the scraper reaches."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from . import queries
from .models import LATENCY_BUCKETS_MS

EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)


class CallCollector:
    def collect(self) -> Iterator[Any]:
        from django.utils import timezone

        span = queries.Window(EPOCH, timezone.now(), "all")
        rows = queries._rows(span, None, ["provider", "model_group"])
        requests = CounterMetricFamily(
            "llm_requests", "LLM calls (attempts) through the gateway", labels=["provider", "model_group", "status"]
        )
        tokens = CounterMetricFamily(
            "llm_tokens", "Tokens through the gateway", labels=["provider", "model_group", "kind"]
        )
        cost = CounterMetricFamily("llm_cost_usd", "Cost of LLM calls in USD", labels=["provider", "model_group"])
        latency = HistogramMetricFamily(
            "llm_latency_seconds", "Latency of LLM calls", labels=["provider", "model_group"]
        )
        for row in rows:
            provider, group = row["provider"] or "none", row["model_group"]
            requests.add_metric([provider, group, "success"], row["successes"])
            requests.add_metric([provider, group, "failure"], row["failures"])
            requests.add_metric([provider, group, "abandoned"], row["calls"] - row["successes"] - row["failures"])
            tokens.add_metric([provider, group, "prompt"], row["prompt_tokens"])
            tokens.add_metric([provider, group, "completion"], row["completion_tokens"])
            cost.add_metric([provider, group], float(row["cost"]))
            cumulative, buckets = 0, []
            for bound, count in zip([*LATENCY_BUCKETS_MS, None], row["latency_histogram"], strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound is None else str(bound / 1000), cumulative))
            latency.add_metric([provider, group], buckets, row["latency_sum"] / 1000)
        yield from (requests, tokens, cost, latency)


def render() -> tuple[bytes, str]:
    registry = CollectorRegistry()
    registry.register(CallCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST
