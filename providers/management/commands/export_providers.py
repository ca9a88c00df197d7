from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from providers.importer import export_config


class Command(BaseCommand):
    help = "Write the provider configuration as YAML (the fuller import format), without any key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", "-o", type=Path, help="a file to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        text = export_config()
        if options["output"]:
            options["output"].write_text(text)
        else:
            self.stdout.write(text, ending="")
