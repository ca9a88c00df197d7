"""A real browser (Playwright driving Debian's Chromium) against the app under uvicorn: log in, chat,
watch the answer grow, stop a second one, reload and find both kept."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from chat.models import Conversation, Message
from tests.conftest import AsgiServer
from tests.factories import PASSWORD
from tests.llm import LLMSetup

pytestmark = pytest.mark.slow


def log_in(page: Page, server: AsgiServer, username: str) -> None:
    page.goto(f"{server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/")


def streaming_text(page: Page) -> str:
    # One evaluation, so an answer that finishes between a check and a read gives "" rather than an error.
    return str(page.evaluate("document.querySelector('article.assistant.streaming .content')?.textContent ?? ''"))


def test_chat_streams_stops_and_keeps_both_answers(
    llm: LLMSetup, alice: Any, asgi_server: AsgiServer, browser: Browser
) -> None:
    llm.fake.slow_delay = 0.3
    llm.deployment("slowpoke", "slow")
    conversation = Conversation.objects.create(owner=alice, model_group="slowpoke")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, asgi_server, "alice")
    page.goto(f"{asgi_server.url}/chat/{conversation.pk}/")

    page.fill("#message-input", "Tell me a story")
    page.click("#composer button[type=submit]")
    page.wait_for_selector("article.assistant.streaming")
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if page.query_selector("article.assistant.streaming") is None:
            break
        text = streaming_text(page)
        if text and (not seen or text != seen[-1]):
            seen.append(text)
        time.sleep(0.05)
    assert len(seen) >= 2, f"the answer should grow in steps, saw {seen}"
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(seen))
    page.wait_for_selector(f"article.assistant.complete >> text={llm.fake.reply.split()[-1]}")
    assert "Served by" in page.inner_text("article.assistant.complete .meta")
    assert page.input_value("#message-input") == "", "the composer is cleared after sending"

    page.fill("#message-input", "And another one")
    page.click("#composer button[type=submit]")
    page.wait_for_function(
        "() => { const n = document.querySelector('article.assistant.streaming .content');"
        " return n && n.textContent.split(' ').length >= 3; }"
    )
    page.click("article.assistant.streaming button.stop")
    page.wait_for_selector("article.assistant.stopped")
    assert "Stopped; the partial answer is kept." in page.inner_text("article.assistant.stopped")

    page.reload()
    answers = page.query_selector_all("article.assistant")
    assert len(answers) == 2
    assert llm.fake.reply in answers[0].inner_text()
    stopped = Message.objects.filter(role="assistant").last()
    assert stopped is not None and stopped.status == "stopped"
    assert stopped.content and stopped.content != llm.fake.reply and llm.fake.reply.startswith(stopped.content)
    assert stopped.content.split()[0] in answers[1].inner_text()
    assert "Stopped" in answers[1].inner_text()
    assert errors == []
