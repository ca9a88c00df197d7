"""The analytics API, keeping the original design's client contract. Staff see everyone's figures,
other users their own."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from assistant_project import api_schema as schema
from providers.health import deployment_health
from providers.models import Deployment

from . import queries

RANGE = OpenApiParameter("time_range", str, enum=["24h", "7d", "30d", "custom"], required=False)
START = OpenApiParameter("start", str, required=False, description="ISO date or time, with time_range=custom")
END = OpenApiParameter("end", str, required=False)


def scope(request: Request) -> int | None:
    return None if request.user.is_staff else request.user.pk


def window_for(request: Request) -> queries.Window:
    params = request.query_params
    try:
        return queries.window(params.get("time_range"), params.get("start"), params.get("end"))
    except queries.BadQuery as exc:
        raise ValidationError({"time_range": [str(exc)]}) from None


def span_json(span: queries.Window) -> dict[str, Any]:
    return {"time_range": span.label, "start": span.start.isoformat(), "end": span.end.isoformat()}


@extend_schema(
    parameters=[RANGE, START, END, OpenApiParameter("group_by", str, enum=list(queries.GROUPS), required=False)],
    responses=schema.Costs,
)
@api_view(["GET"])
def costs(request: Request) -> Response:
    span = window_for(request)
    group_by = request.query_params.get("group_by", "provider")  # by user, a non-staff user sees one row
    try:
        rows = queries.costs(span, group_by, scope(request))
    except queries.BadQuery as exc:
        raise ValidationError({"group_by": [str(exc)]}) from None
    total = sum(row["cost"] for row in rows)
    return Response(
        {
            **span_json(span),
            "group_by": group_by,
            "total_cost": round(total, 8),
            "costs": rows,
            "generated_at": timezone.now().isoformat(),
        }
    )


@extend_schema(parameters=[RANGE, START, END], responses=schema.Performance)
@api_view(["GET"])
def performance(request: Request) -> Response:
    span = window_for(request)
    rows = queries.performance(span, scope(request))
    return Response(
        {
            **span_json(span),
            "providers": rows,
            "totals": queries.totals(span, scope(request)),
            "generated_at": timezone.now().isoformat(),
        }
    )


def health_rows() -> list[dict[str, Any]]:
    deployments = list(Deployment.objects.select_related("provider").order_by("provider__name", "model_group"))
    health = deployment_health([d.pk for d in deployments])
    return [
        {
            "provider": deployment.provider.name,
            "deployment_id": deployment.pk,
            "model_group": deployment.model_group,
            "model": deployment.litellm_model,
            "enabled": deployment.enabled and deployment.provider.enabled,
            "status": health[deployment.pk].status,
            "success_rate": health[deployment.pk].success_rate,
            "average_latency_ms": health[deployment.pk].avg_latency_ms,
            "last_success": health[deployment.pk].last_success,
            "last_error": health[deployment.pk].last_error or None,
            "last_error_at": health[deployment.pk].last_error_at,
            "total_requests": health[deployment.pk].total,
            "in_cooldown": health[deployment.pk].in_cooldown,
        }
        for deployment in deployments
    ]


@extend_schema(responses=schema.HealthReport)
@api_view(["GET"])
def provider_health(request: Request) -> Response:
    rows = health_rows()
    providers: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = providers.setdefault(row["provider"], {"provider": row["provider"], "deployments": []})
        entry["deployments"].append(row)
    for entry in providers.values():
        states = [d["status"] for d in entry["deployments"] if d["enabled"]]
        entry["status"] = next((s for s in ("unhealthy", "degraded", "healthy") if s in states), "unknown")
    return Response({"providers": list(providers.values()), "generated_at": timezone.now().isoformat()})
