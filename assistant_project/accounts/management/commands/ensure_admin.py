import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = (
        "Create an admin user if no superuser exists. The password comes from ADMIN_PASSWORD, "
        "or is generated and printed once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Where the app will be served.")

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        login_url = f"{options['url'].rstrip('/')}/admin/"
        existing = user_model.objects.filter(is_superuser=True).order_by("pk").first()
        if existing is not None:
            self.stdout.write(f"Admin user {existing.get_username()!r} exists. Log in at {login_url}")
            return
        username = os.environ.get("ADMIN_USERNAME") or "admin"
        password = os.environ.get("ADMIN_PASSWORD") or ""
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        user_model.objects.create_superuser(
            username=username, email=os.environ.get("ADMIN_EMAIL", ""), password=password
        )
        shown = password if generated else "(the value of ADMIN_PASSWORD)"
        self.stdout.write(
            self.style.SUCCESS(f"Created admin user. Log in at {login_url} as {username!r} with password {shown}")
        )
        if generated:
            self.stdout.write("This password is shown only once; change it in the admin after logging in.")
