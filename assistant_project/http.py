"""Typed request classes for views (see django-stubs' advice on request.user)."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class AuthenticatedHttpRequest(HttpRequest):
    """A request in a ``@login_required`` view: its user is a real one."""

    user: User
    htmx: HtmxDetails
