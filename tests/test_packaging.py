"""The packaging files agree with the settings: README table, compose file, Dockerfile, pins."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.conftest import ROOT

# Variables read by the settings module, and by the `make run` runner and admin command.
SETTINGS_READS = re.compile(r'(?:os\.environ\.get|_bool|_int|_list|env\.db_url)\(\s*"([A-Z_]+)"')


def names_read_by(*paths: str) -> set[str]:
    found: set[str] = set()
    for path in paths:
        text = (ROOT / path).read_text()
        found |= set(SETTINGS_READS.findall(text))
    return found


def readme_table_names() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.MULTILINE))


def compose() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return spec


def test_readme_lists_exactly_the_settings_read() -> None:
    settings_names = names_read_by("assistant_project/settings.py")
    runner_names = names_read_by(
        "assistant_project/devservices.py", "assistant_project/accounts/management/commands/ensure_admin.py"
    )
    assert settings_names, "the pattern should find the settings"
    assert {"SECRET_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL"} <= settings_names
    table = readme_table_names()
    assert settings_names - table == set(), "settings missing from the README table"
    assert table - settings_names - runner_names == set(), "README lists settings nothing reads"


def test_compose_services_and_variables_agree_with_settings() -> None:
    spec = compose()
    services = spec["services"]
    assert {"db", "redis", "web", "worker"} <= set(services)
    assert services["web"]["deploy"]["replicas"] == 2
    assert services["worker"]["deploy"]["replicas"] == 2
    assert "pgvector" in services["db"]["image"]
    assert services["redis"]["image"].startswith("redis:")
    assert "celery" in services["worker"]["command"]
    known = readme_table_names()
    for name in ("web", "worker", "migrate"):
        env = services[name]["environment"]
        assert set(env) - known == set(), f"{name} sets variables the settings do not read"
        assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"} <= set(env)
        assert "@db:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:6379")
        assert str(env["DEBUG"]).lower() == "false"
    assert "beat" in services["beat"]["command"] and "replicas" not in services["beat"].get("deploy", {})
    assert "ENCRYPTION_KEYS" in services["web"]["environment"]
    assert "media" in " ".join(services["web"]["volumes"])
    assert "media" in " ".join(services["worker"]["volumes"])


def test_dockerfile_runs_asgi_as_non_root_with_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, flags=re.MULTILINE)
    assert re.search(r"^USER app$", dockerfile, flags=re.MULTILINE)
    assert "HEALTHCHECK" in dockerfile
    assert "/health" in dockerfile
    assert "uvicorn" in dockerfile
    assert "assistant_project.asgi:application" in dockerfile


def test_every_requirement_is_pinned_exactly() -> None:
    lines = [
        line.strip()
        for name in ("requirements.txt", "requirements-nodeps.txt")
        for line in (ROOT / name).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    unpinned = [line for line in lines if not re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+\-]+", line)]
    assert unpinned == []
    pins = dict(line.split("==") for line in lines)
    assert pins["litellm"] == "1.110.2"
    assert pins["Django"].startswith("5.2.")


def test_ci_runs_make_test_only() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    commands = [line for line in script.splitlines() if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert commands == ["make test"]
