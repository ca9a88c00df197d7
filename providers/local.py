"""The built-in offline provider (placeholder until the local engines land)."""

from __future__ import annotations

from typing import Any


def register_local_provider(litellm: Any) -> None:
    return None
