"""Figures for dashboards, the API and /metrics, read from hourly roll-ups plus the raw rows newer
than the last roll-up, so they stay fast however large the call table grows.

Scope: staff see everyone's calls, other users only their own (``user_id``). Latency percentiles
come from fixed histogram buckets (as Prometheus computes them): exact to the bucket, interpolated
inside it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce, TruncDay, TruncHour
from django.utils import timezone

from .models import LATENCY_BUCKETS_MS, CallStatus, LLMCall, LLMCallHourly, RollupState, empty_histogram

RANGES = {"24h": datetime.timedelta(hours=24), "7d": datetime.timedelta(days=7), "30d": datetime.timedelta(days=30)}
GROUPS = {
    "provider": "provider",
    "model": "model_group",
    "deployment": "deployment_id",
    "user": "user_id",
    "app": "app",
    "day": "day",
    "hour": "hour",
}


class BadQuery(ValueError):
    """A time range or grouping the figures cannot be computed for; the message says why."""


@dataclass(frozen=True)
class Window:
    start: datetime.datetime
    end: datetime.datetime
    label: str


def window(time_range: str | None, start: str | None = None, end: str | None = None) -> Window:
    now = timezone.now()
    if time_range in (None, "", "custom") and (start or end):
        try:
            begin = datetime.datetime.fromisoformat(start) if start else now - RANGES["7d"]
            finish = datetime.datetime.fromisoformat(end) if end else now
        except ValueError:
            raise BadQuery("start and end must be ISO dates, e.g. 2026-11-01 or 2026-11-01T12:00") from None
        begin = begin if timezone.is_aware(begin) else timezone.make_aware(begin, datetime.UTC)
        finish = finish if timezone.is_aware(finish) else timezone.make_aware(finish, datetime.UTC)
        if finish <= begin:
            raise BadQuery("end must be after start")
        return Window(begin, finish, "custom")
    time_range = time_range or "24h"
    if time_range not in RANGES:
        raise BadQuery(f"time_range must be one of {', '.join(RANGES)} or custom (with start and end)")
    return Window(now - RANGES[time_range], now, time_range)


def rolled_up_to() -> datetime.datetime | None:
    state = RollupState.objects.filter(pk=1).first()
    return state.rolled_up_to if state else None


def _floor_day(moment: datetime.datetime) -> datetime.datetime:
    return moment.astimezone(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _split(span: Window, *, daily: bool = True) -> tuple[Any, Any]:
    """(roll-up rows, raw rows) covering the window without overlap: whole days from daily rows,
    whole hours from hourly rows, the rest (a partial first hour, and everything after the last
    roll-up) from the raw calls."""
    state = RollupState.objects.filter(pk=1).first()
    boundary = state.rolled_up_to if state else None
    if boundary is None or boundary <= span.start:
        return LLMCallHourly.objects.none(), LLMCall.objects.filter(created_at__gte=span.start, created_at__lt=span.end)
    first_hour = span.start.replace(minute=0, second=0, microsecond=0)
    if first_hour < span.start:
        first_hour += datetime.timedelta(hours=1)
    last_hour = min(boundary, span.end)
    hours = Q(grain="hour", hour__gte=first_hour, hour__lt=last_hour)
    days_boundary = state.days_rolled_up_to if state and daily else None
    if days_boundary is not None:
        first_day = _floor_day(first_hour)
        if first_day < first_hour:
            first_day += datetime.timedelta(days=1)
        last_day = min(days_boundary, _floor_day(last_hour))
        if first_day < last_day:
            hours = Q(grain="hour", hour__gte=first_hour, hour__lt=first_day) | Q(
                grain="hour", hour__gte=last_day, hour__lt=last_hour
            )
            hours |= Q(grain="day", hour__gte=first_day, hour__lt=last_day)
    rolled = LLMCallHourly.objects.filter(hours)
    raw = LLMCall.objects.filter(created_at__gte=span.start, created_at__lt=span.end).filter(
        Q(created_at__lt=first_hour) | Q(created_at__gte=last_hour)
    )
    return rolled, raw


def _scoped(queryset: Any, user_id: int | None) -> Any:
    return queryset if user_id is None else queryset.filter(user_id=user_id)


def _histogram_filters(field: str) -> dict[str, Any]:
    bounds = [0.0, *LATENCY_BUCKETS_MS]
    filters = {}
    for index, upper in enumerate([*LATENCY_BUCKETS_MS, None]):
        lower = bounds[index]
        condition = Q(**{f"{field}__isnull": False})
        if index:
            condition &= Q(**{f"{field}__gt": lower})
        if upper is not None:
            condition &= Q(**{f"{field}__lte": upper})
        filters[f"{field}_b{index}"] = Count("id", filter=condition)
    return filters


BUCKETS = range(len(LATENCY_BUCKETS_MS) + 1)
RAW_AGGREGATES: dict[str, Any] = {
    "n": Count("id"),
    "req": Count("id", filter=Q(final=True)),
    "fb": Count("id", filter=Q(is_fallback=True, final=True)),
    "rt": Count("id", filter=Q(attempt__gt=1)),
    "pt": Coalesce(Sum("prompt_tokens"), 0),
    "ct": Coalesce(Sum("completion_tokens"), 0),
    "c": Coalesce(Sum("cost"), Decimal(0)),
    "ls": Coalesce(Sum("latency_ms"), 0.0),
    "lc": Count("latency_ms"),
    "ts": Coalesce(Sum("ttft_ms"), 0.0),
    "tc": Count("ttft_ms"),
    **_histogram_filters("latency_ms"),
    **_histogram_filters("ttft_ms"),
}


def _rows(span: Window, user_id: int | None, keys: list[str]) -> list[dict[str, Any]]:
    """Aggregates by ``keys`` (names in GROUPS' values), both sources merged."""
    hourly, raw = _split(span, daily="hour" not in keys)
    hourly, raw = _scoped(hourly, user_id), _scoped(raw, user_id)
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}

    def entry(key: tuple[Any, ...]) -> dict[str, Any]:
        if key not in merged:
            merged[key] = {
                **dict(zip(keys, key, strict=True)),
                "calls": 0,
                "requests": 0,
                "successes": 0,
                "failures": 0,
                "fallbacks": 0,
                "retries": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cost": Decimal(0),
                "latency_sum": 0.0,
                "latency_count": 0,
                "ttft_sum": 0.0,
                "ttft_count": 0,
                "latency_histogram": empty_histogram(),
                "ttft_histogram": empty_histogram(),
                "errors": {},
            }
        return merged[key]

    hourly_query = hourly.annotate(day=TruncDay("hour")) if "day" in keys else hourly
    bucket_sums = {f"{kind}_ms_b{i}": Sum(f"{kind}_b{i}") for kind in ("latency", "ttft") for i in BUCKETS}
    for row in hourly_query.values(*keys, "status", "error_type").annotate(
        n=Sum("calls"),
        req=Sum("requests"),
        fb=Sum("fallbacks"),
        rt=Sum("retries"),
        pt=Sum("prompt_tokens"),
        ct=Sum("completion_tokens"),
        c=Sum("cost"),
        ls=Sum("latency_ms_sum"),
        lc=Sum("latency_count"),
        ts=Sum("ttft_ms_sum"),
        tc=Sum("ttft_count"),
        **bucket_sums,
    ):
        _merge(entry(tuple(row[k] for k in keys)), row)
    raw_query = raw.annotate(day=TruncDay("created_at"), hour=TruncHour("created_at"))
    for row in raw_query.values(*keys, "status", "error_type").annotate(**RAW_AGGREGATES):
        _merge(entry(tuple(row[k] for k in keys)), row)
    return list(merged.values())


def _merge(item: dict[str, Any], row: dict[str, Any]) -> None:
    _add(
        item,
        row["status"],
        row["error_type"],
        row["n"],
        row["req"],
        row["fb"],
        row["rt"],
        row["pt"],
        row["ct"],
        row["c"],
        row["ls"],
        row["lc"],
        row["ts"],
        row["tc"],
    )
    for index in BUCKETS:
        item["latency_histogram"][index] += row[f"latency_ms_b{index}"] or 0
        item["ttft_histogram"][index] += row[f"ttft_ms_b{index}"] or 0


def _add(item: dict[str, Any], status: str, error_type: str, *values: Any) -> None:
    n, req, fb, rt, pt, ct, cost, ls, lc, ts, tc = (value or 0 for value in values)
    item["calls"] += n
    item["requests"] += req
    item["fallbacks"] += fb
    item["retries"] += rt
    item["prompt_tokens"] += pt
    item["completion_tokens"] += ct
    item["cost"] += Decimal(cost)
    item["latency_sum"] += ls
    item["latency_count"] += lc
    item["ttft_sum"] += ts
    item["ttft_count"] += tc
    if status == CallStatus.SUCCESS:
        item["successes"] += n
    elif status == CallStatus.FAILURE:
        item["failures"] += n
        item["errors"][error_type or "Error"] = item["errors"].get(error_type or "Error", 0) + n


def percentile(histogram: list[int], fraction: float) -> float | None:
    total = sum(histogram)
    if not total:
        return None
    target = fraction * total
    seen = 0
    bounds = [0.0, *map(float, LATENCY_BUCKETS_MS)]
    for index, count in enumerate(histogram):
        if seen + count >= target and count:
            lower = bounds[index]
            upper = float(LATENCY_BUCKETS_MS[index]) if index < len(LATENCY_BUCKETS_MS) else lower * 2
            return round(lower + (upper - lower) * (target - seen) / count, 1)
        seen += count
    return None


def costs(span: Window, group_by: str, user_id: int | None) -> list[dict[str, Any]]:
    if group_by not in GROUPS:
        raise BadQuery(f"group_by must be one of {', '.join(GROUPS)}")
    key = GROUPS[group_by]
    rows = _rows(span, user_id, [key])
    result = [
        {
            group_by: _label(row[key]),
            "cost": float(row["cost"]),
            "requests": row["requests"],
            "calls": row["calls"],
            "prompt_tokens": row["prompt_tokens"],
            "completion_tokens": row["completion_tokens"],
            "total_tokens": row["prompt_tokens"] + row["completion_tokens"],
        }
        for row in rows
    ]
    return sorted(result, key=lambda item: str(item[group_by]) if group_by in ("day", "hour") else -item["cost"])


def _label(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value


def performance(span: Window, user_id: int | None) -> list[dict[str, Any]]:
    rows = _rows(span, user_id, ["provider", "model_group"])
    result = []
    for row in rows:
        attempts = row["successes"] + row["failures"]
        result.append(
            {
                "provider": row["provider"] or "(none reached)",
                "model": row["model_group"],
                "total_requests": row["requests"],
                "successful_requests": row["successes"],
                "attempts": attempts,
                "success_rate": round(row["successes"] / attempts, 4) if attempts else None,
                "avg_latency_ms": round(row["latency_sum"] / row["latency_count"], 1) if row["latency_count"] else None,
                "p50_latency_ms": percentile(row["latency_histogram"], 0.5),
                "p95_latency_ms": percentile(row["latency_histogram"], 0.95),
                "p50_ttft_ms": percentile(row["ttft_histogram"], 0.5),
                "errors": row["errors"],
                "fallbacks": row["fallbacks"],
                "retries": row["retries"],
                "cost": float(row["cost"]),
            }
        )
    return sorted(result, key=lambda item: (item["provider"], item["model"]))


def totals(span: Window, user_id: int | None) -> dict[str, Any]:
    rows = _rows(span, user_id, [])
    row = rows[0] if rows else None
    if row is None:
        return {"cost": 0.0, "requests": 0, "tokens": 0, "success_rate": None}
    attempts = row["successes"] + row["failures"]
    return {
        "cost": float(row["cost"]),
        "requests": row["requests"],
        "tokens": row["prompt_tokens"] + row["completion_tokens"],
        "success_rate": round(row["successes"] / attempts, 4) if attempts else None,
        "p95_latency_ms": percentile(row["latency_histogram"], 0.95),
    }


# --- Roll-ups and retention ---------------------------------------------------------------------


def rollup(now: datetime.datetime | None = None) -> int:
    """Roll every complete hour since the last roll-up into LLMCallHourly; returns hours rolled up.
    Each hour is replaced in one transaction, so running it twice changes nothing."""
    now = now or timezone.now()
    current_hour = now.replace(minute=0, second=0, microsecond=0)
    state, _ = RollupState.objects.get_or_create(pk=1)
    start = state.rolled_up_to
    if start is None:
        first = LLMCall.objects.order_by("created_at").values_list("created_at", flat=True).first()
        if first is None:
            state.rolled_up_to = current_hour
            state.save()
            return 0
        start = first.replace(minute=0, second=0, microsecond=0)
    hours = 0
    while start < current_hour:
        end = start + datetime.timedelta(hours=1)
        with transaction.atomic():
            LLMCallHourly.objects.filter(grain="hour", hour=start).delete()
            LLMCallHourly.objects.bulk_create(_raw_groups(start, end), batch_size=1000)
            RollupState.objects.filter(pk=1).update(rolled_up_to=end)
        start = end
        hours += 1
    _rollup_days(current_hour)
    return hours


ROLLUP_DIMENSIONS = ["user_id", "app", "call_type", "model_group", "deployment_id", "provider", "status", "error_type"]
COUNTERS = [
    "calls",
    "requests",
    "fallbacks",
    "retries",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "latency_ms_sum",
    "latency_count",
    "ttft_ms_sum",
    "ttft_count",
    *(f"{kind}_b{i}" for kind in ("latency", "ttft") for i in range(len(LATENCY_BUCKETS_MS) + 1)),
]


def _rollup_days(hour_boundary: datetime.datetime) -> None:
    """Add each fully rolled-up day's hourly rows into daily rows (long ranges read 24x fewer)."""
    state = RollupState.objects.get(pk=1)
    rolled_hours = state.rolled_up_to or hour_boundary
    day = state.days_rolled_up_to
    if day is None:
        first = LLMCallHourly.objects.filter(grain="hour").order_by("hour").values_list("hour", flat=True).first()
        if first is None:
            return
        day = _floor_day(first)
    while day + datetime.timedelta(days=1) <= rolled_hours:
        end = day + datetime.timedelta(days=1)
        with transaction.atomic():
            LLMCallHourly.objects.filter(grain="day", hour=day).delete()
            found = LLMCallHourly.objects.filter(grain="hour", hour__gte=day, hour__lt=end).values(*ROLLUP_DIMENSIONS)
            rows = [
                LLMCallHourly(
                    hour=day,
                    grain="day",
                    **{k: row[k] for k in ROLLUP_DIMENSIONS},
                    **{name: row[f"s_{name}"] for name in COUNTERS},
                )
                for row in found.annotate(**{f"s_{name}": Sum(name) for name in COUNTERS})
            ]
            LLMCallHourly.objects.bulk_create(rows, batch_size=1000)
            RollupState.objects.filter(pk=1).update(days_rolled_up_to=end)
        day = end


def _raw_groups(start: datetime.datetime, end: datetime.datetime) -> list[LLMCallHourly]:
    dimensions = ["user_id", "app", "call_type", "model_group", "deployment_id", "provider", "status", "error_type"]
    found = LLMCall.objects.filter(created_at__gte=start, created_at__lt=end).values(*dimensions)
    rows = []
    for row in found.annotate(**RAW_AGGREGATES):
        buckets = {f"{kind}_b{i}": row[f"{kind}_ms_b{i}"] for kind in ("latency", "ttft") for i in BUCKETS}
        rows.append(
            LLMCallHourly(
                hour=start,
                user_id=row["user_id"],
                app=row["app"],
                call_type=row["call_type"],
                model_group=row["model_group"],
                deployment_id=row["deployment_id"],
                provider=row["provider"],
                status=row["status"],
                error_type=row["error_type"],
                calls=row["n"],
                requests=row["req"],
                fallbacks=row["fb"],
                retries=row["rt"],
                prompt_tokens=row["pt"],
                completion_tokens=row["ct"],
                cost=row["c"],
                latency_ms_sum=row["ls"],
                latency_count=row["lc"],
                ttft_ms_sum=row["ts"],
                ttft_count=row["tc"],
                **buckets,
            )
        )
    return rows


def prune(retention_days: int, batch: int = 10000) -> int:
    """Delete raw calls older than the retention (already rolled up) in batches, by primary key,
    so no long lock is held; returns how many were deleted."""
    cutoff = timezone.now() - datetime.timedelta(days=retention_days)
    boundary = rolled_up_to()
    if boundary is None:
        return 0  # nothing is rolled up yet: deleting raw rows would lose them
    cutoff = min(cutoff, boundary)  # never delete what is not rolled up yet
    deleted = 0
    while True:
        ids = list(LLMCall.objects.filter(created_at__lt=cutoff).order_by("id").values_list("id", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += LLMCall.objects.filter(id__in=ids).delete()[0]
