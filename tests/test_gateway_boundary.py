"""The gateway is the one door: only it imports LiteLLM, lazily, never at Django start-up."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import ROOT

APPS = ["assistant_project", "providers", "chat", "documents", "audio", "analytics"]
IMPORT = re.compile(r"^\s*(import litellm|from litellm)", re.MULTILINE)


def test_only_the_gateway_imports_litellm() -> None:
    importers = sorted(
        str(path.relative_to(ROOT))
        for app in APPS
        for path in (ROOT / app).rglob("*.py")
        if IMPORT.search(path.read_text())
    )
    assert importers == ["providers/gateway.py"]


def test_django_start_up_does_not_import_litellm() -> None:
    code = (
        "import sys, django; django.setup();"
        "from django.urls import get_resolver; get_resolver().url_patterns;"
        "from django.contrib import admin; admin.autodiscover();"
        "import assistant_project.asgi, assistant_project.celery;"
        "from django.core.management import call_command; call_command('check');"
        "print('litellm loaded' if 'litellm' in sys.modules else 'litellm not loaded')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("litellm not loaded"), done.stdout
