"""How every door writes a moment: one format for people, one for machines, both in UTC.

- People (console, admin, ``tenant``/``audit`` commands' tables): ``2026-12-05 19:04:05 UTC``
  (``stamp_text``).
- Machines (the API's JSON, JSON Lines and CSV exports, ``--json``): ISO 8601 in UTC with a
  ``Z`` and milliseconds, ``2026-12-05T19:04:05.123Z`` (``iso_text``; ``StampJSONEncoder``
  writes every datetime so).

It lives here, beside the settings, because every app may use it (``audit`` included, which
imports nothing of the other apps); it imports nothing of ours.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

STAMP_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


def stamp_text(moment: datetime | None) -> str:
    """``2026-05-17 09:30:12 UTC`` (console, admin and commands); ``—`` for none."""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime(STAMP_FORMAT)


def iso_text(moment: datetime) -> str:
    """``2026-05-17T09:30:12.345Z``: ISO 8601, UTC, always to the millisecond (so the strings
    sort as the moments do and every line of an export has the same width)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StampJSONEncoder(DjangoJSONEncoder):
    """Django's encoder (UUIDs, decimals, ...) with every datetime written by ``iso_text``."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime) and o.tzinfo is not None:
            return iso_text(o)
        return super().default(o)
