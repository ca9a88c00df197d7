from __future__ import annotations

from decimal import Decimal

from django import template
from django.utils.safestring import SafeString

from assistant_project.rendering import render_markdown

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    return render_markdown(text)


@register.filter
def money(value: Decimal | float | None) -> str:
    """Costs are often fractions of a cent: show enough digits to see them."""
    amount = float(value or 0)
    if amount == 0:
        return "0"
    if amount >= 0.01:
        return f"{amount:.2f}"
    return f"{amount:.6f}".rstrip("0")
