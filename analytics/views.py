"""The analytics dashboard (htmx refreshes its figures in place) and /metrics for Prometheus."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from assistant_project.http import AuthenticatedHttpRequest

from . import metrics, queries
from .api import health_rows

CHART_GROUPS = ["provider", "model", "deployment", "user", "app"]


@login_required
@require_GET
def dashboard(request: AuthenticatedHttpRequest) -> HttpResponse:
    params = request.GET
    error = ""
    try:
        span = queries.window(params.get("time_range") or "7d", params.get("start"), params.get("end"))
    except queries.BadQuery as exc:
        error = str(exc)
        span = queries.window("7d")
    group_by = str(params.get("group_by")) if params.get("group_by") in CHART_GROUPS else "provider"
    user_id = None if request.user.is_staff else request.user.pk
    by_day = queries.costs(span, "hour" if span.label == "24h" else "day", user_id)
    grouped = queries.costs(span, group_by, user_id)
    performance = queries.performance(span, user_id)
    charts: dict[str, Any] = {
        "over_time": {
            "labels": [row["hour" if span.label == "24h" else "day"][:16] for row in by_day],
            "cost": [row["cost"] for row in by_day],
            "tokens": [row["total_tokens"] for row in by_day],
            "requests": [row["requests"] for row in by_day],
        },
        "grouped": {"labels": [str(row[group_by]) for row in grouped], "cost": [row["cost"] for row in grouped]},
    }
    context = {
        "span": span,
        "group_by": group_by,
        "groups": CHART_GROUPS,
        "totals": queries.totals(span, user_id),
        "grouped": grouped,
        "performance": performance,
        "health": health_rows() if request.user.is_staff else [],
        "charts": charts,
        "everyone": user_id is None,
        "error": error,
    }
    template = "analytics/_figures.html" if request.htmx else "analytics/dashboard.html"
    return TemplateResponse(request, template, context, status=400 if error else 200)


def _allowed(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    return request.META.get("REMOTE_ADDR", "") in settings.METRICS_ALLOWED_IPS


@never_cache
@require_GET
def prometheus(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return HttpResponse(
            "Metrics are served to staff and to METRICS_ALLOWED_IPS only.\n", status=403, content_type="text/plain"
        )
    body, content_type = metrics.render()
    return HttpResponse(body, content_type=content_type)
