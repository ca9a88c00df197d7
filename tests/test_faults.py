"""Fault drills with real parts: Celery workers killed mid-task, Redis losing its queue, the web
server killed mid-stream, the database going away and coming back."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from assistant_project import pending
from assistant_project.accounts.models import ApiKey
from audio import services as audio_services
from audio.models import Transcription
from chat.models import Conversation, Message, MessageStatus
from chat.services import STREAMING_KEY
from chat.tasks import interrupt_stale_streams
from documents import services as document_services
from documents.models import Chunk, Collection, Document, DocumentStatus
from tests.conftest import WorkerProcess, start_asgi_server, start_worker
from tests.factories import PASSWORD
from tests.fake_provider import wav_bytes
from tests.llm import LLMSetup

pytestmark = pytest.mark.slow

# About 200 chunks of 50 tokens: seven embedding batches, each held 0.4 s by the slow fake model.
LONG_TEXT = " ".join(f"Paragraph {n} says that the river number {n} flows north past the town." for n in range(700))
WORKER_ENV = {"AUDIO_TRANSCRIPTION_GROUP": "ears"}


@pytest.fixture
def slow_embeddings(llm: LLMSetup) -> LLMSetup:
    llm.fake.slow_delay = 0.4
    llm.deployment("slow-vectors", "slow", mode="embedding")
    llm.deployment("ears", mode="transcription")
    return llm


def long_document(owner: Any) -> Document:
    collection = Collection.objects.create(
        owner=owner, name="rivers", embedding_group="slow-vectors", chunk_size=50, chunk_overlap=0
    )
    return document_services.upload(collection, SimpleUploadedFile("rivers.txt", LONG_TEXT.encode()))


def wait_for(check: Any, timeout: float, what: str, worker: WorkerProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{worker.log()[-3000:] if worker else ''}")


def mid_way(document: Document) -> bool:
    document.refresh_from_db()
    return document.status == DocumentStatus.EMBEDDING and 0 < document.chunks_done < document.chunks_total


def assert_complete_without_duplicates(document: Document) -> None:
    document.refresh_from_db()
    assert document.status == DocumentStatus.READY, document.error
    indexes = list(Chunk.objects.filter(document=document).values_list("index", flat=True))
    assert len(indexes) == document.chunks_total == document.chunks_done > 100
    assert sorted(indexes) == list(range(document.chunks_total))  # each chunk once, none missing


def test_pool_process_killed_mid_ingestion_the_task_is_delivered_again(
    slow_embeddings: LLMSetup, alice: Any, tmp_path: Path
) -> None:
    """The process running the task dies (as the OOM killer does): acks_late and reject_on_worker_lost
    put the message back, the worker's next process ingests the rest."""
    worker = start_worker(tmp_path, WORKER_ENV, ("--pool", "prefork", "--concurrency", "1"))
    try:
        document = long_document(alice)
        wait_for(lambda: mid_way(document), 60, "ingestion to be mid-way", worker)
        done_when_killed = document.chunks_done
        children = psutil.Process(worker.process.pid).children(recursive=True)
        assert children, "a prefork worker runs its tasks in child processes"
        for child in children:
            child.send_signal(signal.SIGKILL)
        wait_for(lambda: Document.objects.get(pk=document.pk).status == "ready", 120, "the redelivered task", worker)
        assert "WorkerLostError" in worker.log() or "exited with 'signal 9" in worker.log()
    finally:
        worker.stop()
    assert done_when_killed < document.chunks_total
    assert_complete_without_duplicates(document)
    assert not pending.marked("document", [document.pk])


def test_whole_worker_killed_mid_ingestion_the_next_worker_recovers_it(
    slow_embeddings: LLMSetup, alice: Any, tmp_path: Path
) -> None:
    """The worker and its pool die together (a host lost): the message stays unacknowledged in Redis,
    the document stops making progress, and the next worker's start-up recovery sends it again."""
    env = {**WORKER_ENV, "TASK_STALE_SECONDS": "3"}
    worker = start_worker(tmp_path, env, ("--pool", "prefork", "--concurrency", "1"))
    document = long_document(alice)
    try:
        wait_for(lambda: mid_way(document), 60, "ingestion to be mid-way", worker)
    finally:
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
    time.sleep(3.5)  # longer than TASK_STALE_SECONDS without progress
    document.refresh_from_db()
    assert document.status == DocumentStatus.EMBEDDING  # stuck until something notices
    successor = start_worker(tmp_path, env)
    try:
        wait_for(lambda: Document.objects.get(pk=document.pk).status == "ready", 120, "recovery", successor)
        assert "re-enqueued the ingestion of 1 document(s)" in successor.log()
    finally:
        successor.stop()
    assert_complete_without_duplicates(document)


def flush_redis() -> None:
    """What a restart of the embedded Redis (which keeps nothing on disk) leaves: nothing."""
    redis.Redis.from_url(settings.REDIS_URL).flushall()


def test_redis_restart_loses_the_queue_and_worker_start_sends_the_work_again(
    slow_embeddings: LLMSetup, alice: Any, tmp_path: Path
) -> None:
    slow_embeddings.fake.slow_delay = 0.0
    document = long_document(alice)
    transcription = audio_services.start_transcription(alice, SimpleUploadedFile("hello.wav", wav_bytes(1.0)))
    assert pending.marked("document", [document.pk]) == {document.pk}
    # Old enough that they are not on their way to the queue (the recovery's grace period).
    Document.objects.filter(pk=document.pk).update(updated_at=timezone.now() - timedelta(seconds=30))
    Transcription.objects.filter(pk=transcription.pk).update(updated_at=timezone.now() - timedelta(seconds=30))
    flush_redis()
    assert not pending.marked("document", [document.pk])

    worker = start_worker(tmp_path, WORKER_ENV)
    try:
        wait_for(lambda: Document.objects.get(pk=document.pk).status == "ready", 120, "document recovery", worker)
        wait_for(lambda: Transcription.objects.get(pk=transcription.pk).status == "ready", 60, "transcription", worker)
    finally:
        worker.stop()
    assert "re-enqueued the ingestion of 1 document(s)" in worker.log()
    assert "re-enqueued 1 transcription(s)" in worker.log()
    assert_complete_without_duplicates(document)


def test_the_periodic_sweep_finds_work_lost_while_the_worker_runs(
    slow_embeddings: LLMSetup, alice: Any, tmp_path: Path
) -> None:
    """Rows whose task never reached the queue (sent to a Redis that then restarted), found by beat's
    sweep while the worker keeps running."""
    slow_embeddings.fake.slow_delay = 0.0
    env = {**WORKER_ENV, "RECOVERY_INTERVAL": "2"}
    schedule = tmp_path / "beat-schedule"
    worker = start_worker(tmp_path, env, ("--pool", "solo", "--beat", "--schedule", str(schedule)))
    try:
        time.sleep(2)  # the start-up recovery has run, with nothing to find
        collection = Collection.objects.create(
            owner=alice, name="rivers", embedding_group="slow-vectors", chunk_size=50, chunk_overlap=0
        )
        document = Document.objects.create(
            collection=collection,
            original_name="rivers.txt",
            kind="txt",
            size=len(LONG_TEXT),
            sha256="1" * 64,
            file=ContentFile(LONG_TEXT.encode(), name="rivers.txt"),
        )
        transcription = Transcription.objects.create(
            owner=alice, audio=ContentFile(wav_bytes(1.0), name="hi.wav"), original_name="hi.wav", size=32044
        )
        long_ago = timezone.now() - timedelta(seconds=30)
        Document.objects.filter(pk=document.pk).update(updated_at=long_ago)
        Transcription.objects.filter(pk=transcription.pk).update(updated_at=long_ago)
        wait_for(lambda: Document.objects.get(pk=document.pk).status == "ready", 60, "the sweep", worker)
        wait_for(lambda: Transcription.objects.get(pk=transcription.pk).status == "ready", 60, "the sweep", worker)
    finally:
        worker.stop()
    assert "re-enqueued the ingestion of 1 document(s)" in worker.log()
    assert "re-enqueued 1 transcription(s)" in worker.log()
    assert_complete_without_duplicates(document)


def log_in(client: httpx.Client) -> None:
    client.get("/accounts/login/")
    response = client.post(
        "/accounts/login/",
        data={"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": client.cookies["csrftoken"]},
    )
    assert response.status_code == 302, response.text


def test_web_server_killed_mid_stream_the_answer_ends_interrupted_with_its_text(
    llm: LLMSetup, alice: Any, tmp_path: Path
) -> None:
    llm.fake.slow_delay = 0.2
    llm.fake.reply = " ".join(f"word{n}" for n in range(100))  # twenty seconds of tokens
    llm.deployment("slowpoke", "slow")
    conversation = Conversation.objects.create(owner=alice, model_group="slowpoke")
    env = {"CHAT_STREAM_STALE_SECONDS": "3"}
    first = start_asgi_server(tmp_path, env)
    tokens: list[str] = []
    with httpx.Client(base_url=first.url, timeout=30) as client:
        log_in(client)
        sent = client.post(
            f"/chat/{conversation.pk}/send",
            data={"message": "tell me a story"},
            headers={"HX-Request": "true", "X-CSRFToken": client.cookies["csrftoken"]},
        )
        stream_url = re.findall(r'data-stream-url="([^"]+)"', sent.text)[-1]
        try:
            with client.stream("GET", stream_url) as response:
                for line in response.iter_lines():
                    if line.startswith("data: ") and "text" in line:
                        tokens.append(json.loads(line[6:])["text"])
                    if len(tokens) == 10:  # two seconds in: at least one partial save made
                        first.process.send_signal(signal.SIGKILL)  # no chance to clean up
        except httpx.HTTPError:
            pass
    first.process.wait()
    answer = Message.objects.get(conversation=conversation, role="assistant")
    assert answer.status == MessageStatus.STREAMING  # the dead process left it so
    assert answer.content and "".join(tokens).startswith(answer.content)

    second = start_asgi_server(tmp_path, env)
    try:
        time.sleep(3.5)  # longer than CHAT_STREAM_STALE_SECONDS without a save or heartbeat
        with httpx.Client(base_url=second.url, timeout=30) as client:
            log_in(client)
            # The browser's EventSource reconnects (to another replica, here): it is told how it ended.
            with client.stream("GET", stream_url) as response:
                events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
            assert events[-1]["status"] == "interrupted"
            page = client.get(f"/chat/{conversation.pk}/").text
    finally:
        second.stop()
        # The killed process's claim on the stream would outlive this test (ids restart per test).
        cache.delete(STREAMING_KEY.format(answer.pk))
    answer.refresh_from_db()
    assert answer.status == MessageStatus.INTERRUPTED
    assert "".join(tokens).startswith(answer.content) and len(answer.content) > 10
    assert "interrupted before it finished" in page
    assert ">Regenerate</button>" in page
    assert answer.content.split()[0] in page


def test_the_sweep_interrupts_only_streams_without_a_sign_of_life(alice: Any) -> None:
    conversation = Conversation.objects.create(owner=alice, model_group="m")
    dead = Message.objects.create(conversation=conversation, role="assistant", status="streaming", content="Once")
    alive = Message.objects.create(conversation=conversation, role="assistant", status="streaming", content="Twice")
    Message.objects.filter(pk=dead.pk).update(updated_at=timezone.now() - timedelta(seconds=120))
    assert interrupt_stale_streams() == 1
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert (dead.status, dead.content) == ("interrupted", "Once")
    assert alive.status == "streaming"
    assert "chat.interrupt_stale_streams" in {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}


class CuttableProxy:
    """A TCP proxy in front of PostgreSQL that a test can cut (every connection dropped, new ones
    closed at once) and restore: the network between the app and its database, failing."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.up = True
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        with self.lock:
            for end in self.sockets:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
            self.sockets.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_database_unreachable_gives_503_with_a_message_and_the_app_recovers(
    transactional_db: None, alice: Any, tmp_path: Path
) -> None:
    db = settings.DATABASES["default"]
    proxy = CuttableProxy(db["HOST"], int(db["PORT"]))
    _, key = ApiKey.issue(alice, "outage")
    api = {"Authorization": f"Bearer {key}"}
    url = f"postgres://{db['USER']}:{db['PASSWORD']}@127.0.0.1:{proxy.port}/{db['NAME']}"
    server = start_asgi_server(tmp_path, {"DATABASE_URL": url})
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            log_in(client)
            assert client.get("/api/v1/me", headers=api).status_code == 200
            assert client.get("/chat/").status_code == 200

            proxy.cut()
            me = client.get("/api/v1/me", headers=api)
            assert me.status_code == 503
            assert me.json()["error"]["type"] == "service_unavailable"
            assert "database cannot be reached" in me.json()["error"]["message"]
            assert me.headers["Retry-After"] == "5"
            created = client.post("/api/v1/chat/conversations", headers=api, json={"model": "m"})
            assert created.status_code == 503
            page = client.get("/chat/")
            assert page.status_code == 503
            assert "The database cannot be reached at the moment" in page.text
            sent = client.post(
                "/accounts/login/", data={"username": "alice", "password": "x", "csrfmiddlewaretoken": "x"}
            )
            assert sent.status_code in (403, 503)  # the CSRF check may refuse first; never a 500
            assert client.get("/health").status_code == 503

            proxy.restore()  # the database is back: no restart needed
            assert client.get("/api/v1/me", headers=api).status_code == 200
            assert client.get("/chat/").status_code == 200
    finally:
        server.stop()
        proxy.close()
    assert "Traceback" not in server.log()
    assert '"status": 500' not in server.log()
    assert not Conversation.objects.exists()


def test_redis_restart_loses_a_re_embedding_and_worker_start_sends_it_again(
    slow_embeddings: LLMSetup, alice: Any, tmp_path: Path
) -> None:
    slow_embeddings.fake.slow_delay = 0.0
    slow_embeddings.deployment("vectors-2", mode="embedding")
    document = long_document(alice)
    document_services.ingest(document.pk)  # ready, in index version 1
    collection = document.collection
    document_services.change_embedding_model(collection, "vectors-2")
    collection.refresh_from_db()
    assert (collection.index_version, collection.building_version) == (1, 2)
    flush_redis()  # the re-embedding task is gone with the queue

    worker = start_worker(tmp_path, WORKER_ENV)
    try:
        wait_for(lambda: Collection.objects.get(pk=collection.pk).building_version is None, 60, "re-embedding", worker)
    finally:
        worker.stop()
    assert "re-enqueued the re-embedding of 1 collection(s)" in worker.log()
    collection.refresh_from_db()
    assert collection.index_version == 2
    assert set(Chunk.objects.filter(document=document).values_list("index_version", "embedding_model")) == {
        (2, "vectors-2")
    }
    assert_complete_without_duplicates(document)
