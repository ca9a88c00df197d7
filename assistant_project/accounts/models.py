"""API keys: stored as SHA-256 digests, shown to their owner once."""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.http import HttpRequest

KEY_PREFIX = "aap_"


def hash_key(raw_key: str) -> str:
    # Keys carry 256 bits of entropy, so an unsalted fast digest is safe and lets us look them up.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def for_user(self, user: User) -> ApiKeyQuerySet:
        return self.filter(user=user)

    def active(self) -> ApiKeyQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiKey(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The first characters, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, user: User, name: str) -> tuple[ApiKey, str]:
        """Create a key and return it with its plain text, which is never stored."""
        raw = KEY_PREFIX + secrets.token_urlsafe(32)
        key = cls.objects.create(user=user, name=name, prefix=raw[:12], key_hash=hash_key(raw))
        return key, raw

    @classmethod
    def authenticate(cls, raw_key: str) -> ApiKey | None:
        key = cls.objects.active().select_related("user").filter(key_hash=hash_key(raw_key)).first()
        if key is None or not key.user.is_active:
            return None
        return key

    @classmethod
    def from_request(cls, request: HttpRequest) -> ApiKey | None:
        """The active key named by the request's ``Authorization: Bearer KEY`` header, marked used,
        with its user set as ``request.user`` (for the view and the request log); else None.
        For views outside DRF (streaming and OpenAI-compatible routes)."""
        scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
        key = cls.authenticate(raw.strip()) if scheme.lower() == "bearer" and raw.strip() else None
        if key is not None:
            key.mark_used()
            request.user = key.user
        return key

    @property
    def is_active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])

    def mark_used(self) -> None:
        now = timezone.now()
        # Writing on every request would make each API call a write; once a minute is enough.
        if self.last_used_at is None or (now - self.last_used_at).total_seconds() > 60:
            ApiKey.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now
