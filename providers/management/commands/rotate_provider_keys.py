from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from providers import crypto
from providers.models import AuditLogEntry, Provider


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored provider key with the first of ENCRYPTION_KEYS. Put the new key first, "
        "keep the old one after it, run this, then drop the old key."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        rotated = 0
        with transaction.atomic():
            for provider in Provider.objects.select_for_update().exclude(api_key_encrypted=""):
                try:
                    token = crypto.rotate(provider.api_key_encrypted)
                except crypto.KeyDecryptionError:
                    raise CommandError(
                        f"the key of provider {provider.name!r} cannot be decrypted with any of ENCRYPTION_KEYS; "
                        "nothing was changed"
                    ) from None
                # An update, not save(): the secret itself is unchanged, so the Router need not rebuild.
                Provider.objects.filter(pk=provider.pk).update(api_key_encrypted=token)
                rotated += 1
            if rotated:
                AuditLogEntry.objects.create(
                    actor_label="rotate_provider_keys",
                    action="rotated",
                    object_type="provider keys",
                    object_id="*",
                    object_repr=f"{rotated} provider key(s) re-encrypted with the primary key",
                )
        self.stdout.write(f"re-encrypted {rotated} provider key(s) with the primary encryption key")
