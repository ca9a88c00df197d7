"""Change tracking for the provider configuration: the audit log, and the version every process
compares against to know when to rebuild its Router."""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import Any

from django.core.cache import cache
from django.db import models, transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from .models import AuditLogEntry, Deployment, FallbackRule, Provider, RouterSettings

logger = logging.getLogger(__name__)

VERSION_KEY = "providers:config-version"
AUDITED = (Provider, Deployment, FallbackRule, RouterSettings)
SECRET_FIELDS = {"api_key_encrypted"}
IGNORED_FIELDS = {"created_at", "updated_at", "api_key_last4"}

_actor: contextvars.ContextVar[tuple[Any, str] | None] = contextvars.ContextVar("audit_actor", default=None)


@contextlib.contextmanager
def acting_as(user: Any = None, label: str = "") -> Iterator[None]:
    """Attribute configuration changes made inside the block to a user or a command."""
    token = _actor.set((user, label or (user.get_username() if user is not None else "system")))
    try:
        yield
    finally:
        _actor.reset(token)


def current_version() -> int:
    try:
        return int(cache.get(VERSION_KEY) or 0)
    except Exception:  # Redis down: keep serving the configuration we have
        logger.warning("cannot read the provider configuration version from Redis")
        return -1


def bump_version() -> None:
    try:
        cache.add(VERSION_KEY, 0, timeout=None)
        cache.incr(VERSION_KEY)
    except Exception:
        logger.exception("cannot bump the provider configuration version in Redis")


def _snapshot(instance: models.Model) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        if field.name in IGNORED_FIELDS:
            continue
        value = getattr(instance, field.attname)
        values[field.name] = value if isinstance(value, (str, int, float, bool, list, dict, type(None))) else str(value)
    return values


def _describe(name: str, before: Any, after: Any) -> Any:
    if name in SECRET_FIELDS:
        if not after:
            return "API key cleared"
        return "API key set" if not before else "API key replaced"
    return {"from": before, "to": after}


def _write(instance: models.Model, action: str, changes: dict[str, Any]) -> None:
    actor = _actor.get()
    user, label = actor if actor else (None, "system")
    AuditLogEntry.objects.create(
        actor=user if user is not None and getattr(user, "pk", None) else None,
        actor_label=label[:150],
        action=action,
        object_type=str(instance._meta.verbose_name),
        object_id=str(instance.pk),
        object_repr=str(instance)[:300],
        changes=changes,
    )


@receiver(pre_save)
def _remember_before(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    if sender not in AUDITED or instance.pk is None:
        return
    previous = sender._default_manager.filter(pk=instance.pk).first()
    instance._audit_before = _snapshot(previous) if previous is not None else None  # type: ignore[attr-defined]


@receiver(post_save)
def _audit_save(sender: type[models.Model], instance: models.Model, created: bool, **kwargs: Any) -> None:
    if sender not in AUDITED or kwargs.get("raw"):
        return
    before = getattr(instance, "_audit_before", None)
    after = _snapshot(instance)
    if created or before is None:
        changes = {
            name: ("API key set" if value else "no API key") if name in SECRET_FIELDS else value
            for name, value in after.items()
        }
        _write(instance, "created", changes)
    else:
        changes = {
            name: _describe(name, before.get(name), value) for name, value in after.items() if before.get(name) != value
        }
        if not changes:
            return
        _write(instance, "changed", changes)
    transaction.on_commit(bump_version)


@receiver(post_delete)
def _audit_delete(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    if sender not in AUDITED:
        return
    _write(instance, "deleted", {})
    transaction.on_commit(bump_version)
