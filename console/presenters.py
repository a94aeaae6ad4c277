"""Turn what the selectors return into what the detail page shows.

The selectors speak in the saga's terms (a step is ``completed`` with ``reused``; an
allocation has ``released_by``); an operator reads "done", "reused", "compensated". Keeping
that translation here keeps the templates free of logic and lets the tests check it directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from provisioning.models import COMPENSATION, STEP_KIND, Allocation
from tenants.formats import queued_text
from tenants.models import Condition
from tenants.selectors import StepView, TenantDetail

RECOMMENDATION_LABELS: dict[str, str] = {
    "wait": "Wait",
    "cancel": "Cancel",
    "reset": "Reset, then retry",
    "retry": "Retry",
    "decommission": "Decommission",
    "unpause": "Unpause when ready",
    "none": "Nothing to do",
}


@dataclass
class StepRow:
    position: int
    name: str
    # The one vocabulary of every door (``tenants.selectors.STEP_STATUSES``).
    status: str
    tries: int
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    error: str
    note: str = ""
    compensation: str = ""
    # Only for the step a live run is working on: the heartbeat against its timeout.
    heartbeat_age: float | None = None
    heartbeat_timeout: float | None = None

    @property
    def heartbeat_percent(self) -> int:
        if self.heartbeat_age is None or not self.heartbeat_timeout:
            return 0
        return min(100, int(self.heartbeat_age / self.heartbeat_timeout * 100))

    @property
    def heartbeat_overdue(self) -> bool:
        return (
            self.heartbeat_age is not None
            and self.heartbeat_timeout is not None
            and self.heartbeat_age > self.heartbeat_timeout
        )


def step_rows(detail: TenantDetail, released: list[Allocation] | None = None) -> list[StepRow]:
    """The run's steps in order, with the status every door shows and a note for operators."""
    views = detail.step_views
    return rows_for(
        views,
        condition=detail.tenant.condition,
        seconds_since_heartbeat=detail.seconds_since_heartbeat,
        heartbeat_timeout=detail.heartbeat_timeout,
        current=detail.run.current_step if detail.run is not None and detail.run.is_live else "",
    )


def rows_for(
    views: list[StepView],
    *,
    condition: str = "",
    seconds_since_heartbeat: float | None = None,
    heartbeat_timeout: float | None = None,
    current: str = "",
) -> list[StepRow]:
    rows = []
    for view in views:
        kind = STEP_KIND.get(view.name)
        note = ""
        if view.status == "dispatched":
            # No worker has taken it: how long it has waited (and for what), not a heartbeat.
            note = queued_text(view.queued_seconds)
            if view.waiting_for:
                note = f"{note}, waiting for {view.waiting_for}"
            if view.name == current and condition == Condition.LOST:
                note = f"the step's try was lost; resending (try {view.tries})"
            elif view.name == current and condition == Condition.RETRYING:
                note = f"a try failed; retrying after a pause (try {view.tries})"
        elif view.status == "stalled":
            note = f"stalled: no heartbeat after {view.tries} tries"
        elif view.status == "abandoned":
            note = "cut off when the run stopped"
        if view.reused:
            note = (note + "; " if note else "") + "reused an earlier allocation"
        if view.republished:
            note = (note + "; " if note else "") + (
                f"message re-published {view.republished}× (same try)"
            )
        row = StepRow(
            position=view.position + 1,
            name=view.name,
            status=view.status,
            tries=view.tries,
            started_at=view.started_at,
            finished_at=view.finished_at,
            duration_ms=view.duration_ms,
            error=view.error,
            note=note,
            compensation=COMPENSATION[kind] if view.status == "compensated" and kind else "",
        )
        waiting_again = condition in (Condition.LOST, Condition.RETRYING)
        # A queued step has no heartbeat to be overdue: its note says how long it has waited.
        if view.name == current and view.status == "running" and not waiting_again:
            row.heartbeat_age = seconds_since_heartbeat
            row.heartbeat_timeout = heartbeat_timeout
        rows.append(row)
    return rows
