"""The words every door shows for a step and a run (console, API, admin, commands).

A step's status read in the light of its run: a run that is no longer live never shows a step
as running or dispatched. Here, in ``provisioning``, so the provisioning admin shows the same
words as every other door without importing ``tenants`` (``tenants.selectors`` re-exports).
"""

from __future__ import annotations

from enum import StrEnum

from .kinds import STEP_CHANGES
from .models import STEP_KIND, Allocation, Run, RunStatus, StepExecution, StepStatus


class StepDisplay(StrEnum):
    WAITING = "waiting"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    STALLED = "stalled"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    ABANDONED = "abandoned"
    COMPENSATED = "compensated"


# The one step-status vocabulary every door shows (console, API, admin, commands). It is the
# saga's own status read in the light of its run: a run that is no longer live never shows a
# step as running or dispatched.
STEP_STATUSES: tuple[str, ...] = tuple(StepDisplay)


def step_status(step: StepExecution, run: Run, released_kinds: set[str]) -> str:
    """What an operator reads for one step of one run.

    ``released_kinds`` are the kinds of allocation this run made or reused that are released
    now: a completed step of a rolled-back (or rolling-back) run whose allocation went is
    ``compensated``. A step cut off by a cancel, a reset or a failure elsewhere is
    ``abandoned``; the current step of a run the watchdog flagged is ``stalled``.
    """
    live = run.status in (RunStatus.RUNNING, RunStatus.CANCELLING)
    kind = STEP_KIND.get(step.name)
    if step.status == StepStatus.COMPLETED:
        if kind in released_kinds and run.status != RunStatus.COMPLETED:
            return StepDisplay.COMPENSATED
        if step.name in STEP_CHANGES and run.status in (RunStatus.CANCELLED, RunStatus.FAILED):
            return StepDisplay.COMPENSATED  # a plan change's step: its change was reverted
        return StepDisplay.COMPLETED
    if step.status in (StepStatus.DISPATCHED, StepStatus.RUNNING):
        if not live or run.status == RunStatus.CANCELLING or run.compensating:
            return StepDisplay.ABANDONED
        if run.stalled_at is not None:
            return StepDisplay.STALLED
        return str(step.status)
    if step.status == StepStatus.SKIPPED:
        # Set when a run settles; a step that had begun a try was cut off, not skipped.
        return StepDisplay.ABANDONED if step.tries else StepDisplay.SKIPPED
    if step.status == StepStatus.WAITING and not live:
        return StepDisplay.SKIPPED
    return str(step.status)


# A run's status as every door's screen shows it. The saga's own word stays in the API and
# the database; on a screen, a run the watchdog flagged is "stalled" (its status is still
# "running": the handle is held until an operator resets it), and a run set aside by a reset
# or a decommission is "abandoned" ("orphaned" is the word of a tenant's condition, which a
# page shows beside it and means something else: a handle without its run).
RUN_STATUS_WORDS: dict[str, str] = {RunStatus.ORPHANED: StepDisplay.ABANDONED}


def run_status_word(run: Run) -> str:
    """What an operator reads for a run: ``stalled`` for a live run the watchdog flagged,
    ``abandoned`` for one a reset or a decommission set aside, else the run's status."""
    if run.status in (RunStatus.RUNNING, RunStatus.CANCELLING) and run.stalled_at is not None:
        return StepDisplay.STALLED
    return RUN_STATUS_WORDS.get(run.status, str(run.status))


def kinds_released(run: Run, allocations: list[Allocation]) -> set[str]:
    return {
        a.kind
        for a in allocations
        if a.released_at is not None and (a.allocated_by_id == run.id or a.released_by_id == run.id)
    }


def released_kinds(run: Run) -> set[str]:
    """The kinds of allocation ``run`` made or released that are released now (one query)."""
    return kinds_released(run, list(Allocation.objects.filter(tenant_id=run.tenant_id)))
