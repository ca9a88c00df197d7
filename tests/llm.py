"""Provider configuration for tests: deployments on the fake provider, made as an operator would.

Each test gets model names of its own (the fake provider picks its behaviour from the name), so
cooldowns and usage counters that LiteLLM keeps in Redis never leak from one test to another.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from django.conf import settings

from providers import gateway
from providers.models import Deployment, FallbackRule, Provider, RouterSettings
from tests.fake_provider import FakeProvider

_counter = itertools.count(1)
PLANTED_KEY = "sk-planted-" + "Zq9x" * 6


class LLMSetup:
    def __init__(self, fake: FakeProvider) -> None:
        self.fake = fake
        self.tag = uuid.uuid4().hex[:6]
        self.provider = Provider(name=f"fake-{self.tag}", kind="openai_compatible", api_base=fake.api_base)
        self.provider.set_api_key(PLANTED_KEY)
        self.provider.save()
        # Cohere-style rerank wants the host root as its base URL.
        self.cohere = Provider.objects.create(name=f"fake-cohere-{self.tag}", kind="cohere", api_base=fake.url)
        self.cohere.set_api_key(PLANTED_KEY)
        self.cohere.save()
        gateway.rebuild_now()

    def model_name(self, behaviour: str = "ok") -> str:
        return f"{behaviour}-{self.tag}-{next(_counter)}"

    def deployment(self, group: str, behaviour: str = "ok", mode: str = "chat", **fields: Any) -> Deployment:
        name = self.model_name(behaviour)
        provider = self.cohere if mode == "rerank" else self.provider
        prefix = "cohere" if mode == "rerank" else "openai"
        deployment = Deployment.objects.create(
            model_group=group, litellm_model=f"{prefix}/{name}", provider=provider, mode=mode, **fields
        )
        gateway.rebuild_now()
        return deployment

    def fake_model(self, deployment: Deployment) -> str:
        """The model name the fake provider sees for a deployment."""
        return deployment.litellm_model.split("/", 1)[1]

    def fallback(self, group: str, *targets: str, kind: str = "general") -> FallbackRule:
        rule = FallbackRule(model_group=group, fallback_groups=list(targets), kind=kind)
        rule.full_clean()
        rule.save()
        gateway.rebuild_now()
        return rule

    def router(self, **values: Any) -> RouterSettings:
        router_settings = RouterSettings.load()
        for name, value in values.items():
            setattr(router_settings, name, value)
        router_settings.full_clean()
        router_settings.save()
        gateway.rebuild_now()
        return router_settings


def clear_router_state() -> None:
    """Forget cooldowns and usage counters LiteLLM keeps in Redis, and this process's Router."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        for pattern in ("deployment:*", "global_router:*", "*cooldown*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()
    gateway.rebuild_now()
