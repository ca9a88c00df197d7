from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from providers.config import acting_as
from providers.local import SEED
from providers.models import Deployment, Provider, ProviderKind


class Command(BaseCommand):
    help = (
        "Create the built-in offline provider and its deployments (local-chat, local-embed, local-stt, "
        "local-tts) where they do not exist. Deployments an operator disabled or changed are left alone."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        created = []
        with acting_as(label="seed_local_models"):
            provider, _ = Provider.objects.get_or_create(name="local", defaults={"kind": ProviderKind.LOCAL})
            for spec in SEED:
                group = str(spec["model_group"])
                if Deployment.objects.filter(model_group=group).exists():
                    continue
                Deployment.objects.create(provider=provider, **spec)
                created.append(group)
        if created:
            self.stdout.write(f"Seeded the offline local models: {', '.join(created)}")
        else:
            self.stdout.write("The offline local models are already configured.")
