"""Turn what the selectors return into what the detail page shows.

The selectors speak in the saga's terms (a step is ``completed`` with ``reused``; an
allocation has ``released_by``); an operator reads "done", "reused", "compensated". Keeping
that translation here keeps the templates free of logic and lets the tests check it directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from provisioning.models import COMPENSATION, STEP_KIND, Allocation, StepExecution, StepStatus
from tenants.selectors import TenantDetail

RECOMMENDATION_LABELS: dict[str, str] = {
    "wait": "Wait",
    "cancel": "Cancel",
    "reset": "Reset, then retry",
    "retry": "Retry",
    "decommission": "Decommission",
    "none": "Nothing to do",
}


@dataclass
class StepRow:
    position: int
    name: str
    status: str  # waiting, running, done, reused, failed, compensated, skipped
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


def step_rows(detail: TenantDetail, released: list[Allocation]) -> list[StepRow]:
    """The run's steps in order, with the status an operator reads.

    ``released`` is what this run's compensation released: a completed step whose allocation
    it released is shown as compensated (rolled back), not done.
    """
    released_kinds = {a.kind for a in released}
    live = detail.run is not None and detail.run.is_live
    rows = []
    for step in detail.steps:
        rows.append(_row(step, released_kinds))
    current = next((r for r in rows if r.status == "running"), None)
    if live and current is not None:
        if detail.run and detail.run.stalled_at:
            # Still "running" in the ledger, but the watchdog has given up on it.
            current.note = f"stalled: no heartbeat after {current.tries} tries"
        else:
            current.heartbeat_age = detail.seconds_since_heartbeat
            current.heartbeat_timeout = detail.heartbeat_timeout
    return rows


def _row(step: StepExecution, released_kinds: set[str]) -> StepRow:
    kind = STEP_KIND.get(step.name)
    note = ""
    compensation = ""
    if step.status == StepStatus.COMPLETED:
        status = "reused" if step.reused else "done"
        if kind in released_kinds:
            status = "compensated"
            compensation = COMPENSATION[kind]
    elif step.status == StepStatus.DISPATCHED:
        # Sent to the broker, not yet picked up by a worker: moving, but nothing has started.
        status = "running"
        note = "queued for a worker"
    elif step.status == StepStatus.RUNNING:
        status = "running"
    elif step.status == StepStatus.FAILED:
        status = "failed"
    elif step.status == StepStatus.SKIPPED:
        status = "skipped"
    else:
        status = "waiting"
    if step.reused and status == "compensated":
        note = "reused, then released"
    elif step.reused and status != "reused":
        note = "reused an earlier allocation"
    return StepRow(
        position=step.position + 1,
        name=step.name,
        status=status,
        tries=step.tries,
        started_at=step.started_at,
        finished_at=step.finished_at,
        duration_ms=step.duration_ms,
        error=step.error,
        note=note,
        compensation=compensation,
    )
