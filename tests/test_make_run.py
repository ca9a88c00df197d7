"""`make run` on embedded defaults: serves, prints an admin login, stops everything on Ctrl-C, and
serves again with the same data on a second run."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningApp:
    def __init__(self, var_dir: Path, port: int, log_path: Path) -> None:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ADMIN_PASSWORD", "MAKEFLAGS", "MFLAGS"}
        }
        env.update({"VAR_DIR": str(var_dir), "PORT": str(port), "HOST": "127.0.0.1"})
        self.port = port
        self.log_path = log_path
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            ["make", "run"],
            cwd=ROOT,
            env=env,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float) -> float:
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"make run exited early:\n{self.log()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=5).status_code == 200:
                    return time.monotonic() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"not healthy within {timeout} s:\n{self.log()}")

    def processes(self) -> list[psutil.Process]:
        """Everything this run started: descendants of make, and the daemonised postgres."""
        found = psutil.Process(self.process.pid).children(recursive=True)
        for proc in psutil.process_iter(["cmdline"]):
            if any(str(self.log_path.parent) in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        return found

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the whole foreground process group, as a terminal sends it."""
        os.killpg(self.process.pid, signal.SIGINT)
        self.process.wait(60)


def login(port: int, username: str, password: str) -> bool:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        page = client.get("/admin/login/")
        token = client.cookies["csrftoken"]
        response = client.post(
            "/admin/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token, "next": "/admin/"},
            headers={"Referer": f"http://127.0.0.1:{port}/admin/login/"},
        )
        assert page.status_code == 200
        return response.status_code == 302 and response.headers["location"] == "/admin/"


def test_make_run_serves_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    port = free_port()
    first = RunningApp(var_dir, port, tmp_path / "first.log")
    try:
        first.wait_healthy(180)
        match = re.search(r"Log in at (\S+) as 'admin' with password (\S+)", first.log())
        assert match, first.log()
        assert match.group(1) == f"http://127.0.0.1:{port}/admin/"
        password = match.group(2)
        assert login(port, "admin", password)
        started = first.processes()
        names = {proc.name() for proc in started}
        assert {"postgres", "redis-server"} <= names, names
        assert "beat: Starting" in first.log(), "the worker runs the periodic-task scheduler"
        assert "Seeded the offline local models: local-chat, local-embed, local-stt, local-tts" in first.log()
    finally:
        first.interrupt()
    time.sleep(1)
    leftovers = [proc for proc in started if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE]
    assert leftovers == [], [(p.pid, p.name(), p.cmdline()) for p in leftovers]
    # make re-raises the SIGINT it got, as a shell expects; the runner itself exited cleanly.
    assert first.process.returncode in (0, -signal.SIGINT), first.log()
    assert "SIGINT: stopped" in first.log()

    second = RunningApp(var_dir, port, tmp_path / "second.log")
    try:
        elapsed = second.wait_healthy(30)
        assert "Admin user 'admin' exists" in second.log()
        assert "password" not in second.log().lower().split("admin user 'admin' exists", 1)[1][:200]
        assert login(port, "admin", password), "the data of the first run should be kept"
    finally:
        again = second.processes()
        second.interrupt()
    time.sleep(1)
    assert [p for p in again if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    assert elapsed < 30
