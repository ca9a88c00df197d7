from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

# Sections of the app, shown in the navigation once their pages are routed.
SECTIONS = [
    ("chat:index", "Chat"),
    ("documents:index", "Documents"),
    ("audio:index", "Audio"),
    ("analytics:index", "Analytics"),
]


def navigation(request: HttpRequest) -> dict[str, Any]:
    items = []
    for url_name, label in SECTIONS:
        try:
            url = reverse(url_name)
        except NoReverseMatch:
            continue
        items.append({"url": url, "label": label, "active": request.path.startswith(url)})
    return {"nav_items": items}


def budget(request: HttpRequest) -> dict[str, Any]:
    """The user's remaining budget, shown in the navigation (one aggregate query)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or request.path.startswith(("/admin/", "/api/", "/v1/")):
        return {}
    from providers.gateway import budget_status

    return {"budget": budget_status(user.pk)}
