"""WSGI entry point, for tools that need one; serve the app under ASGI (asgi.py) in production."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant_project.settings")

application = get_wsgi_application()
