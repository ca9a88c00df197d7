"""Analytics: figures that match the calls made, the same before and after roll-up, per-user
scoping, performance and health, the dashboard, /metrics and retention."""

from __future__ import annotations

import datetime

import pytest
from django.test import Client
from django.utils import timezone

from analytics import queries
from analytics.models import LLMCall, LLMCallHourly
from assistant_project.accounts.models import ApiKey
from providers import gateway
from tests.llm import LLMSetup

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "hello there"}]  # the fake answers with 2 prompt and 9 completion tokens
ONE_CALL = 2 * 0.001 + 9 * 0.002


@pytest.fixture
def traffic(llm: LLMSetup, alice, bob) -> LLMSetup:
    llm.deployment("premium", input_cost_per_token="0.001", output_cost_per_token="0.002")
    llm.deployment("flaky", "error-500")
    llm.fallback("flaky", "premium")
    for _ in range(3):
        gateway.chat("premium", HELLO, context=gateway.CallContext("chat", alice.pk))
    gateway.chat("flaky", HELLO, context=gateway.CallContext("api", alice.pk))  # failures, then the fallback
    for _ in range(2):
        gateway.chat("premium", HELLO, context=gateway.CallContext("documents", bob.pk))
    return llm


def api(user) -> Client:
    _, key = ApiKey.issue(user, "k")
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def test_costs_match_the_calls_made_and_users_see_only_their_own(traffic: LLMSetup, alice, bob, charlie) -> None:
    everyone = api(charlie).get("/api/v1/analytics/costs?time_range=24h&group_by=user").json()
    by_user = {row["user"]: row for row in everyone["costs"]}
    assert by_user[alice.pk]["requests"] == 4 and by_user[alice.pk]["cost"] == pytest.approx(4 * ONE_CALL)
    assert by_user[bob.pk]["requests"] == 2 and by_user[bob.pk]["cost"] == pytest.approx(2 * ONE_CALL)
    assert everyone["total_cost"] == pytest.approx(6 * ONE_CALL)

    mine = api(alice).get("/api/v1/analytics/costs?time_range=24h&group_by=user").json()
    assert [row["user"] for row in mine["costs"]] == [alice.pk]
    by_model = {row["model"]: row for row in api(alice).get("/api/v1/analytics/costs?group_by=model").json()["costs"]}
    assert by_model["premium"]["requests"] == 4 and by_model["premium"]["total_tokens"] == 4 * 11
    assert by_model["flaky"]["cost"] == 0
    by_app = {row["app"]: row for row in api(charlie).get("/api/v1/analytics/costs?group_by=app").json()["costs"]}
    assert by_app["documents"]["requests"] == 2 and by_app["api"]["requests"] == 1
    by_day = api(charlie).get("/api/v1/analytics/costs?time_range=7d&group_by=day").json()["costs"]
    assert len(by_day) == 1 and by_day[0]["cost"] == pytest.approx(6 * ONE_CALL)
    bad = api(alice).get("/api/v1/analytics/costs?time_range=forever")
    assert bad.status_code == 400 and "time_range must be one of" in bad.json()["error"]["message"]


def test_figures_are_the_same_from_roll_ups_and_raw_rows(traffic: LLMSetup, charlie) -> None:
    client = api(charlie)
    LLMCall.objects.update(created_at=timezone.now() - datetime.timedelta(hours=3))
    before = client.get("/api/v1/analytics/costs?time_range=24h&group_by=model").json()["costs"]
    performance_before = client.get("/api/v1/analytics/performance?time_range=24h").json()["providers"]
    assert queries.rollup() >= 3
    assert LLMCallHourly.objects.exists()
    assert queries.rollup() == 0, "nothing more to roll up"
    after = client.get("/api/v1/analytics/costs?time_range=24h&group_by=model").json()["costs"]
    assert after == before
    performance_after = client.get("/api/v1/analytics/performance?time_range=24h").json()["providers"]
    assert performance_after == performance_before
    # A new call lands after the roll-up boundary and is counted from the raw rows.
    gateway.chat("premium", HELLO, context=gateway.CallContext("chat", charlie.pk))
    total = client.get("/api/v1/analytics/costs?time_range=24h&group_by=provider").json()["total_cost"]
    assert total == pytest.approx(7 * ONE_CALL)


def test_performance_counts_failures_fallbacks_and_latency(traffic: LLMSetup, charlie) -> None:
    body = api(charlie).get("/api/v1/analytics/performance?time_range=24h").json()
    rows = {row["model"]: row for row in body["providers"]}
    flaky, premium = rows["flaky"], rows["premium"]
    assert (
        flaky["successful_requests"] == 0 and flaky["success_rate"] == 0 and flaky["errors"]["InternalServerError"] >= 1
    )
    assert premium["total_requests"] == 6 and premium["fallbacks"] == 1
    assert (
        premium["success_rate"] == 1.0
        and premium["p50_latency_ms"] > 0
        and premium["p95_latency_ms"] >= premium["p50_latency_ms"]
    )
    assert body["totals"]["requests"] == 6 and set(body) >= {"time_range", "generated_at", "providers"}


def test_provider_health_flips_as_the_provider_fails(traffic: LLMSetup, charlie) -> None:
    health = api(charlie).get("/api/v1/analytics/provider-health").json()
    deployments = {d["model_group"]: d for p in health["providers"] for d in p["deployments"]}
    assert deployments["premium"]["status"] == "healthy" and deployments["flaky"]["status"] == "unhealthy"
    assert deployments["flaky"]["last_error"].startswith("InternalServerError")
    assert deployments["premium"]["total_requests"] == 6 and deployments["premium"]["last_success"]


def test_the_dashboard_draws_with_local_charts_and_refreshes_in_place(
    traffic: LLMSetup, alice_client: Client, charlie_client: Client
) -> None:
    page = alice_client.get("/analytics/?time_range=24h").content.decode()
    assert "/static/vendor/chartjs/chart.umd.min" in page and "cdn" not in page.lower()
    assert 'id="chart-data"' in page and 'hx-trigger="every 30s"' in page and "Your usage" in page
    assert f"${4 * ONE_CALL:.2f}" in page
    partial = alice_client.get("/analytics/?time_range=7d&group_by=model", HTTP_HX_REQUEST="true").content.decode()
    assert partial.startswith('<section id="figures"') and "<html" not in partial and "premium" in partial
    staff = charlie_client.get("/analytics/?time_range=24h").content.decode()
    assert "Everyone's usage" in staff and "Provider health" in staff and f"${6 * ONE_CALL:.2f}" in staff


def test_metrics_are_served_to_staff_and_allowed_addresses_only(
    traffic: LLMSetup, alice_client: Client, charlie_client: Client, settings
) -> None:
    assert alice_client.get("/metrics").status_code == 403
    body = charlie_client.get("/metrics").content.decode()
    assert 'llm_requests_total{model_group="premium",provider="' in body and 'status="success"} 6.0' in body
    assert "llm_cost_usd_total" in body and 'llm_latency_seconds_bucket{le="+Inf"' in body
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1"]
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="10.0.0.9").get("/metrics").status_code == 403


def test_retention_deletes_old_raw_rows_only_after_roll_up(traffic: LLMSetup) -> None:
    old = timezone.now() - datetime.timedelta(days=100)
    LLMCall.objects.filter(app="documents").update(created_at=old)
    assert queries.prune(90, batch=1) == 0, "not rolled up yet: kept"
    queries.rollup()
    assert queries.prune(90, batch=1) == 2
    assert LLMCall.objects.count() > 0 and not LLMCall.objects.filter(app="documents").exists()


def test_long_ranges_read_daily_roll_ups_with_the_same_figures(traffic: LLMSetup, charlie) -> None:
    client = api(charlie)
    calls = list(LLMCall.objects.order_by("id"))
    for index, call in enumerate(calls):  # spread the calls over three days, a week ago
        call.created_at = timezone.now() - datetime.timedelta(days=3 + index % 3, hours=index)
        call.save(update_fields=["created_at"])
    queries_to_compare = [
        "/api/v1/analytics/costs?time_range=7d&group_by=day",
        "/api/v1/analytics/costs?time_range=30d&group_by=user",
        "/api/v1/analytics/performance?time_range=30d",
    ]
    before = [client.get(url).json() for url in queries_to_compare]
    queries.rollup()
    assert LLMCallHourly.objects.filter(grain="day").exists(), "complete days are rolled up again by day"
    after = [client.get(url).json() for url in queries_to_compare]
    for old, new in zip(before, after, strict=True):
        old.pop("generated_at"), new.pop("generated_at")
        old.pop("end", None), new.pop("end", None)
        old.pop("start", None), new.pop("start", None)
        assert new == old
    assert sum(row["requests"] for row in after[0]["costs"]) == 6
