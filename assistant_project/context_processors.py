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
