"""Fixtures every test module can use: personas, the fake provider, a real Celery worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import Browser, sync_playwright

from tests.factories import PASSWORD, UserFactory
from tests.fake_provider import FakeProvider
from tests.llm import LLMSetup, clear_router_state

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def collected_static(django_db_blocker: Any) -> None:
    """Pages are rendered with the production static storage (hashed names), as in deployment."""
    from django.core.management import call_command

    with django_db_blocker.unblock():
        call_command("collectstatic", "--noinput", verbosity=0)


@pytest.fixture(scope="session", autouse=True)
def close_stray_connections(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Worker threads (asyncio.to_thread, sync_to_async) keep their own database connections; end
    them before the test database is dropped."""
    yield
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def fresh_login_counters() -> None:
    """Failed sign-ins are counted in Redis per account and address; each test starts at zero."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(client.scan_iter(match="*login:fail:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# Personas: alice and bob are ordinary users, charlie is staff. Cross-user tests use alice and bob.
@pytest.fixture
def alice(db: None) -> Any:
    return UserFactory(username="alice")


@pytest.fixture
def bob(db: None) -> Any:
    return UserFactory(username="bob")


@pytest.fixture
def charlie(db: None) -> Any:
    return UserFactory(username="charlie", is_staff=True, is_superuser=True)


def _client_for(user: Any) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def alice_client(alice: Any) -> Client:
    return _client_for(alice)


@pytest.fixture
def bob_client(bob: Any) -> Client:
    return _client_for(bob)


@pytest.fixture
def charlie_client(charlie: Any) -> Client:
    return _client_for(charlie)


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


@pytest.fixture
def provider(fake_provider: FakeProvider) -> Iterator[FakeProvider]:
    """The fake provider with its request log and behaviour overrides cleared for this test."""
    fake_provider.reset()
    yield fake_provider
    fake_provider.reset()


@pytest.fixture
def llm(provider: FakeProvider, transactional_db: None) -> Iterator[LLMSetup]:
    """Providers on the fake provider, committed (other threads and processes see them), with fresh
    router state; add deployments with ``llm.deployment(group, behaviour)``."""
    clear_router_state()
    yield LLMSetup(provider)
    clear_router_state()


def database_url_for_tests() -> str:
    """The URL of the database the tests run against (pytest-django's test_ copy)."""
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class ChildProcess:
    """A process a test started, with its output in a log file."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class WorkerProcess(ChildProcess):
    pass


def start_worker(
    tmp_path: Path, extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ("--pool", "solo")
) -> WorkerProcess:
    """A real Celery worker process, consuming from the test Redis, writing to the test database.
    ``args``: worker options (the solo pool by default; production runs prefork)."""
    log_path = tmp_path / f"worker-{time.monotonic_ns()}.log"
    env = {**os.environ, "DATABASE_URL": database_url_for_tests(), **(extra_env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "assistant_project", "worker", "--loglevel", "INFO", *args],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so a test can kill it with its pool
    )
    worker = WorkerProcess(process, log_path)
    deadline = time.monotonic() + 60
    while "ready." not in worker.log():
        if process.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise RuntimeError(f"the Celery worker did not start:\n{worker.log()}")
        time.sleep(0.1)
    return worker


@pytest.fixture
def celery_worker(transactional_db: None, tmp_path: Path) -> Iterator[WorkerProcess]:
    worker = start_worker(tmp_path)
    yield worker
    worker.stop()


class AsgiServer(ChildProcess):
    """The app under uvicorn, as in production, against the test database."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        super().__init__(process, log_path)
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_asgi_server(tmp_path: Path, extra_env: dict[str, str] | None = None) -> AsgiServer:
    import socket

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    log_path = tmp_path / "uvicorn.log"
    env = {**os.environ, "DATABASE_URL": database_url_for_tests(), **(extra_env or {})}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "assistant_project.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = AsgiServer(process, port, log_path)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{server.url}/accounts/login/", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"uvicorn did not start:\n{server.log()}")
        time.sleep(0.1)


@pytest.fixture
def asgi_server(transactional_db: None, tmp_path: Path) -> Iterator[AsgiServer]:
    server = start_asgi_server(tmp_path)
    yield server
    server.stop()


# --- Chromium (Debian's) driven by Playwright -----------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    # Playwright's sync API keeps an event loop running in this thread, which makes Django refuse the
    # test's own (synchronous, single-threaded) ORM calls; they are safe here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
