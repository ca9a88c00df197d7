"""Shared set-up for chat tests."""

from __future__ import annotations

from typing import Any

from chat.models import Conversation
from tests.llm import LLMSetup


def conversation_for(owner: Any, llm: LLMSetup, group: str = "gpt-test", behaviour: str = "ok", **fields: Any):
    llm.deployment(group, behaviour, input_cost_per_token="0.000001", output_cost_per_token="0.000002")
    return Conversation.objects.create(owner=owner, model_group=group, **fields)
