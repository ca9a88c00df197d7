"""Rendered Markdown is sanitised: nothing executable survives, and code is highlighted."""

from __future__ import annotations

import pytest
from django.test import Client

from assistant_project.rendering import render_markdown
from chat.models import Conversation, Message
from providers.models import Deployment, Provider
from tests.xss import CORPUS, executable_parts


def test_the_checker_finds_what_it_looks_for() -> None:
    assert executable_parts('<img src=x onerror="alert(1)"><a href=" javascript:x">') == [
        "<img>",
        "img[onerror]",
        "a[href= javascript:x]",
    ]


@pytest.mark.parametrize("payload", CORPUS)
def test_nothing_executable_survives_rendering(payload: str) -> None:
    html = str(render_markdown(payload))
    assert executable_parts(html) == [], html


def test_the_whole_corpus_at_once_and_on_the_chat_page(alice_client: Client, alice) -> None:
    document = "\n\n".join(CORPUS)
    assert executable_parts(str(render_markdown(document))) == []

    provider = Provider.objects.create(name="p", kind="openai")
    Deployment.objects.create(model_group="gpt-test", litellm_model="openai/x", provider=provider)
    conversation = Conversation.objects.create(owner=alice, model_group="gpt-test", title="<script>alert(1)</script>")
    Message.objects.create(conversation=conversation, role="user", content=document)
    Message.objects.create(conversation=conversation, role="assistant", content=document, status="complete")
    page = alice_client.get(f"/chat/{conversation.pk}/").content.decode()
    messages = page.split('id="message-list"', 1)[1].split('id="composer"', 1)[0]
    assert "alert(1)" in messages  # the payloads are shown, as text
    assert executable_parts(messages) == []
    assert "<script>alert(1)</script>" not in page  # the title is escaped too


def test_markdown_features_render() -> None:
    html = str(
        render_markdown(
            "# Title\n\n**bold** and `code`\n\n```python\nprint('hi')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |"
        )
    )
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html
    assert '<span class="nb">print</span>' in html  # highlighted by Pygments
    assert "<table>" in html
    link = str(render_markdown("[docs](https://example.com)"))
    assert 'href="https://example.com"' in link and 'rel="noopener noreferrer nofollow"' in link
    image = str(render_markdown("![diagram](https://example.com/d.png)"))
    assert "<img" not in image and 'href="https://example.com/d.png"' in image
