"""How every door writes a moment: one format, always in UTC and saying so."""

from __future__ import annotations

from datetime import UTC, datetime

STAMP_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


def stamp_text(moment: datetime | None) -> str:
    """``2026-05-17 09:30:12 UTC`` (console, admin and commands); ``—`` for none."""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime(STAMP_FORMAT)
