"""The words every door shows for a step and for what to do next, once.

``StepDisplay`` (defined in ``provisioning/display.py``) is a step's status as an operator reads
it (the saga's own status read in the light of its run); ``Recommended`` is the action the reset
runbook recommends (``tenants.selectors.recommend``), with the label the console shows.
``StrEnum`` keeps the values plain strings in JSON and templates; a typo in code is an
``AttributeError``.
"""

from __future__ import annotations

from enum import StrEnum

from provisioning.display import StepDisplay

__all__ = ["Recommended", "StepDisplay"]


class Recommended(StrEnum):
    WAIT = "wait"
    CANCEL = "cancel"
    RESET = "reset"
    RETRY = "retry"
    DECOMMISSION = "decommission"
    UNPAUSE = "unpause"  # an operator paused the run
    CHANGE_PLAN = "change_plan"  # a change failed: change the plan again (or leave it)
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
    Recommended.UNPAUSE: "Unpause when ready",
    Recommended.CHANGE_PLAN: "Change plan again",
    Recommended.NONE: "Nothing to do",
}
