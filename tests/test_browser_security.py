"""Every page in Chromium under the Content Security Policy, with the XSS corpus planted in everything a
user or a model can write: no policy violation is reported, no planted script runs, nothing is fetched
from another origin."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.postgres.search import SearchVector
from django.utils import timezone
from playwright.sync_api import Browser, Dialog, Page

from analytics.models import LLMCall
from audio.models import SpeechClip, Transcription, TranscriptionStatus
from chat.models import Conversation, Message, MessageRole, MessageStatus
from documents.models import Chunk, Collection, Document, DocumentStatus
from providers.models import AuditLogEntry, Deployment, Provider
from tests.conftest import AsgiServer
from tests.factories import PASSWORD
from tests.fake_provider import embed_text
from tests.xss import CORPUS

pytestmark = pytest.mark.slow

EVERYTHING = "\n\n".join(CORPUS)
SHORT = [p for p in CORPUS if len(p) <= 60]

# Runs in every document before its own scripts: records policy violations and any planted alert().
WATCH = """
window.__violations = [];
window.__alerts = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(
    `${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
window.alert = window.confirm = window.prompt = (m) => { window.__alerts.push(String(m)); };
"""


def plant(owner: Any) -> dict[str, int]:
    """The corpus in every user- or model-written field the pages and admin lists show."""
    short = SHORT[0] + " " + SHORT[2]
    conversation = Conversation.objects.create(owner=owner, model_group="m", title=short[:200])
    Message.objects.create(conversation=conversation, role=MessageRole.USER, content=EVERYTHING)
    Message.objects.create(
        conversation=conversation,
        role=MessageRole.ASSISTANT,
        content=EVERYTHING,
        provider=SHORT[1][:64],
        model=short,
        sources=[{"number": 1, "document": short, "document_id": 1, "page": 1, "content": EVERYTHING, "score": 1.0}],
    )
    Message.objects.create(
        conversation=conversation,
        role=MessageRole.ASSISTANT,
        status=MessageStatus.FAILED,
        content="",
        error=EVERYTHING,
    )
    collection = Collection.objects.create(owner=owner, name=short[:100], embedding_group="vectors")
    passage = Document.objects.create(
        collection=collection,
        original_name="passage.md",
        kind="md",
        size=1,
        sha256="f" * 64,
        file="documents/p.md",
        status=DocumentStatus.READY,
    )
    Chunk.objects.create(
        document=passage,
        collection=collection,
        index=0,
        text=EVERYTHING,
        page=1,
        token_count=300,
        embedding=embed_text(EVERYTHING),
        embedding_model="vectors",
    )
    Chunk.objects.update(search=SearchVector("text", config="english"))
    for number, name in enumerate(SHORT):
        Document.objects.create(
            collection=collection,
            original_name=name,
            kind="txt",
            size=1,
            sha256=f"{number:064d}",
            file="documents/x.txt",
            status=DocumentStatus.FAILED,
            error=EVERYTHING,
        )
    transcription = Transcription.objects.create(
        owner=owner,
        audio="audio/x.wav",
        original_name=short,
        status=TranscriptionStatus.READY,
        text=EVERYTHING,
        segments=[{"start": 0.0, "end": 1.0, "text": p} for p in CORPUS],
    )
    SpeechClip.objects.create(owner=owner, text=EVERYTHING, voice="v", format="mp3", content_type="audio/mpeg")
    provider = Provider.objects.create(name=SHORT[0][:64], kind="openai", api_base="http://127.0.0.1:9/v1")
    Deployment.objects.create(provider=provider, model_group=short[:100], litellm_model=f"openai/{short}"[:200])
    AuditLogEntry.objects.create(
        actor=owner, action="changed", object_type="provider", object_id="1", object_repr=short, changes={"x": short}
    )
    LLMCall.objects.create(
        created_at=timezone.now(),
        trace_id="t",
        user=owner,
        app="chat",
        call_type="chat",
        requested_group=short[:100],
        model_group=short[:100],
        status="failure",
        error_message=EVERYTHING,
    )
    return {"conversation": conversation.pk, "collection": collection.pk, "transcription": transcription.pk}


def pages(ids: dict[str, int]) -> list[str]:
    return [
        "/",
        "/accounts/api-keys/",
        "/chat/",
        f"/chat/{ids['conversation']}/",
        "/documents/",
        f"/documents/{ids['collection']}/",
        "/audio/",
        f"/audio/transcriptions/{ids['transcription']}/",
        "/audio/voice/",
        f"/audio/voice/{ids['conversation']}/",
        "/analytics/",
        "/api/docs/",
        "/admin/",
        "/admin/providers/provider/",
        "/admin/providers/deployment/",
        "/admin/providers/auditlogentry/",
        "/admin/documents/collection/",
        "/admin/documents/document/",
        "/admin/analytics/llmcall/",
        "/admin/auth/user/",
        "/admin/auth/user/add/",
    ]


def visit(page: Page, url: str) -> dict[str, Any]:
    response = page.goto(url, wait_until="load")
    assert response is not None, url
    page.wait_for_timeout(300)  # scripts that run after load (htmx, charts, swagger) get their turn
    return {
        "status": response.status,
        "violations": page.evaluate("window.__violations"),
        "alerts": page.evaluate("window.__alerts"),
    }


def test_every_page_passes_the_csp_and_no_planted_script_runs(
    llm: Any, asgi_server: AsgiServer, browser: Browser
) -> None:
    llm.fake.reply = EVERYTHING
    llm.deployment("chatty")
    llm.deployment("vectors", mode="embedding")
    operator = get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    ids = plant(operator)

    header = httpx.get(f"{asgi_server.url}/accounts/login/").headers["content-security-policy"]
    assert "script-src 'self'" in header
    assert "unsafe-inline" not in header
    assert "unsafe-eval" not in header
    assert "frame-ancestors 'none'" in header

    context = browser.new_context()
    context.add_init_script(WATCH)
    page = context.new_page()
    foreign: list[str] = []
    console: list[str] = []
    page.on("request", lambda r: foreign.append(r.url) if urlsplit(r.url).hostname not in {"127.0.0.1"} else None)
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)

    def on_dialog(dialog: Dialog) -> None:
        console.append(f"dialog {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)

    assert visit(page, f"{asgi_server.url}/accounts/login/") == {"status": 200, "violations": [], "alerts": []}
    page.fill("input[name=username]", "ops")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{asgi_server.url}/")

    results = {path: visit(page, asgi_server.url + path) for path in pages(ids)}
    # A cited answer from the documents page: the model's answer and the passage both carry the corpus.
    page.goto(f"{asgi_server.url}/documents/{ids['collection']}/")
    page.fill("textarea[name=query]", "alert script onerror javascript")
    page.select_option("form[action$='/ask'] select[name=model]", "chatty")
    page.click("form[action$='/ask'] button[type=submit]")
    page.wait_for_selector("#answer ol.sources li", timeout=30000)
    page.wait_for_timeout(300)
    results["ask (htmx)"] = {
        "status": 200,
        "violations": page.evaluate("window.__violations"),
        "alerts": page.evaluate("window.__alerts"),
    }
    assert "<script>alert(1)</script>" in page.inner_text("#answer")
    bad = {path: r for path, r in results.items() if r != {"status": 200, "violations": [], "alerts": []}}
    assert bad == {}
    assert console == []
    assert [url for url in foreign if not url.startswith(("data:", "blob:"))] == []

    # The planted text is on the pages as text, so the check above looked at it.
    page.goto(f"{asgi_server.url}/chat/{ids['conversation']}/")
    assert "<script>alert(1)</script>" in page.inner_text("#message-list")
    page.goto(f"{asgi_server.url}/admin/documents/document/")
    assert "<img src=x onerror=alert(1)>" in page.inner_text("#result_list")
    context.close()


def test_the_policy_is_enforced(llm: Any, asgi_server: AsgiServer, browser: Browser) -> None:
    """A control: an inline script put on a page by hand is blocked and reported, so the check above
    can see a violation when there is one."""
    context = browser.new_context()
    context.add_init_script(WATCH)
    page = context.new_page()
    page.goto(f"{asgi_server.url}/accounts/login/")
    page.evaluate(
        """() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1';
        document.body.appendChild(s); }"""
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.ran") is None
    assert any("script-src" in v for v in page.evaluate("window.__violations"))
    context.close()
