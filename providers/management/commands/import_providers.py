from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from providers.importer import ImportErrorMessage, import_config


class Command(BaseCommand):
    help = "Import providers, deployments, fallbacks and router settings from a providers.yaml file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="the YAML file (the original design's format or ours)")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        try:
            text = path.read_text()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None
        try:
            report = import_config(text, actor=f"import_providers {path.name}")
        except ImportErrorMessage as exc:
            raise CommandError(f"{path}: {exc}") from None
        for warning in report.warnings:
            self.stderr.write(f"warning: {warning}")
        for label in report.created:
            self.stdout.write(f"created {label}")
        for label in report.updated:
            self.stdout.write(f"updated {label}")
        self.stdout.write(f"{len(report.created)} created, {len(report.updated)} updated, {report.unchanged} unchanged")
