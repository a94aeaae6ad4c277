"""The words every door shows for a step and for what to do next, once.

``StepDisplay`` is a step's status as an operator reads it (the saga's own status read in the
light of its run: ``tenants.selectors.step_status``); ``Recommended`` is the action the reset
runbook recommends (``tenants.selectors.recommend``), with the label the console shows.
``StrEnum`` keeps the values plain strings in JSON and templates; a typo in code is an
``AttributeError``.
"""

from __future__ import annotations

from enum import StrEnum


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


class Recommended(StrEnum):
    WAIT = "wait"
    CANCEL = "cancel"
    RESET = "reset"
    RETRY = "retry"
    DECOMMISSION = "decommission"
    NONE = "none"

    @property
    def label(self) -> str:
        return _RECOMMENDED_LABELS[self]


_RECOMMENDED_LABELS = {
    Recommended.WAIT: "Wait",
    Recommended.CANCEL: "Cancel",
    Recommended.RESET: "Reset, then retry",
    Recommended.RETRY: "Retry",
    Recommended.DECOMMISSION: "Decommission",
    Recommended.NONE: "Nothing to do",
}
