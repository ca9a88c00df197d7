"""Health of each deployment, from its recent calls (user traffic and periodic probes alike) and
from whether LiteLLM has it in cooldown."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Avg, Count, Max, Q
from django.utils import timezone

HEALTHY = "healthy"
DEGRADED = "degraded"
UNHEALTHY = "unhealthy"
UNKNOWN = "unknown"


def status_for(success_rate: float | None) -> str:
    """Healthy above 95% success, degraded above 80%, else unhealthy; unknown without traffic."""
    if success_rate is None:
        return UNKNOWN
    if success_rate > 0.95:
        return HEALTHY
    if success_rate > 0.80:
        return DEGRADED
    return UNHEALTHY


@dataclass
class DeploymentHealth:
    deployment_id: int
    total: int = 0
    successes: int = 0
    avg_latency_ms: float | None = None
    last_success: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str = ""
    in_cooldown: bool = False

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.total if self.total else None

    @property
    def status(self) -> str:
        if self.in_cooldown:
            return UNHEALTHY
        return status_for(self.success_rate)


def window_start() -> datetime:
    return timezone.now() - timedelta(seconds=settings.HEALTH_WINDOW)


def deployment_health(deployment_ids: list[int], *, with_cooldowns: bool = True) -> dict[int, DeploymentHealth]:
    """Health of these deployments over the last ``HEALTH_WINDOW`` seconds (two queries)."""
    from analytics.models import CallStatus, LLMCall

    health = {deployment_id: DeploymentHealth(deployment_id) for deployment_id in deployment_ids}
    if not deployment_ids:
        return health
    recent = LLMCall.objects.filter(deployment_id__in=deployment_ids, created_at__gte=window_start()).exclude(
        status=CallStatus.ABANDONED
    )
    rows = recent.values("deployment_id").annotate(
        total=Count("id"),
        successes=Count("id", filter=Q(status=CallStatus.SUCCESS)),
        avg_latency=Avg("latency_ms", filter=Q(status=CallStatus.SUCCESS)),
    )
    for row in rows:
        item = health[row["deployment_id"]]
        item.total = row["total"]
        item.successes = row["successes"]
        item.avg_latency_ms = row["avg_latency"]
    # Last success and last error look further back than the window: an operator wants to know
    # when a deployment last worked even if it has been quiet since.
    last = (
        LLMCall.objects.filter(deployment_id__in=deployment_ids)
        .values("deployment_id")
        .annotate(
            last_success=Max("created_at", filter=Q(status=CallStatus.SUCCESS)),
            last_error=Max("created_at", filter=Q(status=CallStatus.FAILURE)),
        )
    )
    for latest in last:
        item = health[latest["deployment_id"]]
        item.last_success = latest["last_success"]
        item.last_error_at = latest["last_error"]
    errored = [item for item in health.values() if item.last_error_at is not None]
    for item in errored:
        call = (
            LLMCall.objects.filter(deployment_id=item.deployment_id, status=CallStatus.FAILURE)
            .order_by("-created_at", "-id")
            .only("error_type", "error_message")
            .first()
        )
        if call is not None:
            item.last_error = f"{call.error_type}: {call.error_message}"[:300]
    if with_cooldowns:
        from . import gateway

        for deployment_id in gateway.cooldowns(deployment_ids):
            if deployment_id in health:
                health[deployment_id].in_cooldown = True
    return health
