"""The formatting helpers as template filters, for the doors that render Django templates
outside the console (the admin's tenant pages)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

from provisioning.display import run_status_word
from tenants.formats import stamp_text

register = template.Library()


@register.filter
def stamp(moment: datetime | None) -> str:
    """The one format for people: ``2026-12-05 19:04:05 UTC``."""
    return stamp_text(moment)


@register.filter
def run_status(run: Any) -> str:
    """A run's status in the words every screen uses (stalled, abandoned, ...)."""
    return run_status_word(run)


@register.filter
def dotbreak(value: Any) -> SafeString:
    """A dotted name that may wrap after its dots and nowhere else (``<wbr>``)."""
    parts = (conditional_escape(p) for p in str(value).split("."))
    return mark_safe(".<wbr>".join(parts))  # noqa: S308 - every part is escaped


@register.filter
def outcome_word(outcome: Any, dry_run: bool) -> str:
    """A bulk outcome in words ("Would be accepted"), not its code (``would_accept``)."""
    return str(outcome.word(dry_run=bool(dry_run)))
