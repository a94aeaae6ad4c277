"""Recording and reading the last pass of a periodic job (the watchdog)."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from .models import Pulse

WATCHDOG = "watchdog"


def record_watchdog_pass(now: datetime | None = None) -> None:
    """Called once at the end of every watchdog pass (``provisioning.tasks.run_watchdog``).

    One upsert statement: the pass costs one more query, whatever the number of processes.
    """
    Pulse.objects.bulk_create(
        [Pulse(name=WATCHDOG, at=now or timezone.now())],
        update_conflicts=True,
        unique_fields=["name"],
        update_fields=["at"],
    )


def last_watchdog_pass() -> datetime | None:
    return Pulse.objects.filter(name=WATCHDOG).values_list("at", flat=True).first()
