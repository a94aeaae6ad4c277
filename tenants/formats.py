"""How every door writes a moment and a wait. The timestamp helpers live in
``controlplane.formats`` (the audit app uses them too) and are named here for the doors that
import them from ``tenants``."""

from __future__ import annotations

from controlplane.formats import STAMP_FORMAT, StampJSONEncoder, iso_text, stamp_text

__all__ = [
    "STAMP_FORMAT",
    "StampJSONEncoder",
    "iso_text",
    "queued_text",
    "seconds_text",
    "stamp_text",
]


def seconds_text(value: float | None) -> str:
    """A span of seconds as an operator reads it: ``0.4 s``, ``12 s``; ``—`` for none."""
    if value is None:
        return "—"
    if value < 10:
        return f"{value:.1f} s"
    return f"{value:.0f} s"


def queued_text(seconds: float | None = None) -> str:
    """A step sent to the broker that no worker has taken yet: there is no heartbeat to speak
    of, only how long it has waited. Every door that shows such a step words it so."""
    if seconds is None:
        return "queued for a worker"
    return f"queued for a worker ({seconds_text(seconds)})"
