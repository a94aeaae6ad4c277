"""Small formatting helpers for the console's templates."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html

from tenants.formats import stamp_text

register = template.Library()


@register.filter
def duration(ms: int | None) -> str:
    """Milliseconds as an operator reads them: 840 ms, 2.4 s, 3 min 5 s."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"


@register.filter
def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 10:
        return f"{value:.1f} s"
    return f"{value:.0f} s"


@register.simple_tag
def state_badge(state: str) -> str:
    """A tenant state as a coloured badge (the text says it too, for colour-blind eyes)."""
    return format_html(
        '<span class="badge state-{}" data-state="{}">{}</span>', state, state, state.title()
    )


@register.filter
def get(mapping: dict[str, Any], key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def shortid(value: Any) -> str:
    return str(value)[:8] if value else ""


@register.filter
def event_summary(data: Any) -> list[tuple[str, str]]:
    """An event's data as (key, value) pairs for display; nested values as compact JSON."""
    import json

    if not isinstance(data, dict):
        return [("data", json.dumps(data))]
    pairs = []
    for key, value in data.items():
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        pairs.append((str(key), shown))
    return pairs


@register.filter
def urlencode_dict(mapping: dict[str, str]) -> str:
    """A dict of query parameters as a query string (escaped again by autoescape: fine in href)."""
    from django.utils.http import urlencode

    return urlencode(mapping) if mapping else ""


@register.simple_tag
def condition_badge(condition: str) -> str:
    """A tenant's condition as a badge; the ones needing an operator are marked as such."""
    from tenants.models import NEEDS_ATTENTION, Condition

    label = Condition(condition).label if condition in Condition.values else condition
    attention = condition in NEEDS_ATTENTION
    return format_html(
        '<span class="badge condition cond-{}{}" data-condition="{}"{}>{}</span>',
        condition,
        " attention" if attention else "",
        condition,
        format_html(' title="{}"', "Needs attention") if attention else "",
        label,
    )


@register.simple_tag
def stamp(moment: Any) -> str:
    """A timestamp as ``<time>``: machine-readable ISO 8601 plus the one readable format."""
    if moment is None:
        return "—"
    return format_html('<time datetime="{}">{}</time>', moment.isoformat(), stamp_text(moment))


@register.filter
def dotbreak(value: str) -> str:
    """A dotted name that may wrap after its dots and nowhere else (``<wbr>``)."""
    from django.utils.html import conditional_escape
    from django.utils.safestring import mark_safe

    return mark_safe(".<wbr>".join(conditional_escape(p) for p in str(value).split(".")))  # noqa: S308
