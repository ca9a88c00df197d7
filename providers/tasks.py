"""Periodic health probes: one cheap real call per deployment that has probing on."""

from __future__ import annotations

from celery import shared_task

from .models import Deployment


@shared_task(name="providers.probe_deployments", time_limit=60, soft_time_limit=50)
def probe_deployments() -> int:
    """Fan out one probe task per deployment to probe; returns how many were queued."""
    queued = 0
    for deployment in Deployment.objects.active().select_related("provider"):
        if deployment.probes:
            probe_deployment.delay(deployment.pk)
            queued += 1
    return queued


@shared_task(name="providers.probe_deployment", time_limit=90, soft_time_limit=80)
def probe_deployment(deployment_id: int) -> bool | None:
    from . import gateway

    deployment = Deployment.objects.active().select_related("provider").filter(pk=deployment_id).first()
    if deployment is None:
        return None
    return gateway.probe_deployment(deployment).ok
