"""Budgets and rate limits, checked by the gateway before every call: over budget nothing is sent
to a provider and the API answers 429; a nearly spent budget moves chat to a cheaper group."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from analytics.models import Budget, LLMCall
from assistant_project.accounts.models import ApiKey
from chat.models import Conversation, Message
from providers import gateway
from tests.llm import LLMSetup

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "hello there"}]  # 2 prompt tokens, 9 completion tokens from the fake


def cost_of_one_call() -> Decimal:
    return Decimal("0.001") * 2 + Decimal("0.002") * 9


@pytest.fixture
def priced(llm: LLMSetup) -> LLMSetup:
    llm.deployment("premium", input_cost_per_token="0.001", output_cost_per_token="0.002")
    llm.deployment("cheap", input_cost_per_token="0.00001", output_cost_per_token="0.00001")
    return llm


def api_client(user) -> Client:
    _, key = ApiKey.issue(user, "k")
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def test_a_spent_budget_refuses_the_call_and_sends_nothing(priced: LLMSetup, alice) -> None:
    Budget.objects.create(user=alice, period="day", limit_usd=cost_of_one_call() * 2)
    context = gateway.CallContext("chat", alice.pk)
    for _ in range(2):
        gateway.chat("premium", HELLO, context=context)
    spent = gateway.budget_status(alice.pk)
    assert spent is not None and spent.spent == cost_of_one_call() * 2 and spent.remaining == 0
    sent = len(priced.fake.requests)
    with pytest.raises(gateway.GatewayError) as refused:
        gateway.chat("premium", HELLO, context=context)
    assert refused.value.kind == "budget_exceeded" and refused.value.status == 429
    assert "budget of $0.04 per day is spent" in refused.value.message
    with pytest.raises(gateway.GatewayError):
        gateway.embed("premium", ["x"], context=context)  # every kind of call is checked
    assert len(priced.fake.requests) == sent, "nothing reached the provider"


def test_the_budget_allows_calls_again_after_the_period_resets(priced: LLMSetup, alice) -> None:
    Budget.objects.create(user=alice, period="month", limit_usd=cost_of_one_call())
    context = gateway.CallContext("chat", alice.pk)
    gateway.chat("premium", HELLO, context=context)
    with pytest.raises(gateway.GatewayError):
        gateway.chat("premium", HELLO, context=context)
    start, _ = gateway.period_start("month")
    LLMCall.objects.filter(user=alice).update(created_at=start - datetime.timedelta(minutes=1))  # last month
    assert gateway.chat("premium", HELLO, context=context).text == priced.fake.reply


def test_the_default_budget_applies_to_users_without_their_own(priced: LLMSetup, alice, bob) -> None:
    Budget.objects.create(user=None, period="day", limit_usd=Decimal("0"))
    Budget.objects.create(user=bob, period="day", limit_usd=Decimal("100"))
    with pytest.raises(gateway.GatewayError):
        gateway.chat("premium", HELLO, context=gateway.CallContext("chat", alice.pk))
    assert gateway.chat("premium", HELLO, context=gateway.CallContext("chat", bob.pk)).text


def test_a_nearly_spent_budget_moves_chat_to_the_cheaper_group_and_says_so(priced: LLMSetup, alice) -> None:
    Budget.objects.create(
        user=alice, period="day", limit_usd=cost_of_one_call() * 2, downgrade_group="cheap", downgrade_at=Decimal("0.4")
    )
    conversation = Conversation.objects.create(owner=alice, model_group="premium")
    client = api_client(alice)
    url = f"/api/v1/chat/conversations/{conversation.pk}/messages"
    first = client.post(url, {"message": "one"}, content_type="application/json").json()
    assert first["model_used"] == "premium" and first["downgraded_from"] is None
    second = client.post(url, {"message": "two"}, content_type="application/json").json()
    assert second["model_used"] == "cheap" and second["downgraded_from"] == "premium"
    page = Client()
    page.force_login(alice)
    html = page.get(f"/chat/{conversation.pk}/").content.decode()
    assert "Your budget is nearly spent: answered by cheap instead of premium." in html
    assert "Budget $0.0" in html and "left this day" in html


def test_over_budget_the_chat_api_answers_429_and_keeps_the_message(priced: LLMSetup, alice) -> None:
    Budget.objects.create(user=alice, period="day", limit_usd=Decimal("0"))
    conversation = Conversation.objects.create(owner=alice, model_group="premium")
    response = api_client(alice).post(
        f"/api/v1/chat/conversations/{conversation.pk}/messages",
        {"message": "keep me"},
        content_type="application/json",
    )
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "budget_exceeded" and "is spent" in response.json()["error"]["message"]
    assert Message.objects.filter(role="user", content="keep me").exists()
    assert priced.fake.requests == []


def test_the_request_rate_limit_is_shared_through_redis(priced: LLMSetup, alice) -> None:
    Budget.objects.create(user=alice, period="day", limit_usd=Decimal("100"), requests_per_minute=3)
    context = gateway.CallContext("chat", alice.pk)
    if timezone.now().second > 57:  # do not straddle a minute boundary
        import time

        time.sleep(3)
    for _ in range(3):
        gateway.chat("premium", HELLO, context=context)
    with pytest.raises(gateway.GatewayError) as refused:
        gateway.chat("premium", HELLO, context=context)
    assert refused.value.kind == "rate_limited" and "3 requests per minute" in refused.value.message
