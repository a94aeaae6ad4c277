"""The reset runbook's decision table (``tenants.selectors.RECOMMENDATIONS``): one situation per
row, each decided by its own row (not an earlier one), with the row's action and a sentence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from provisioning.models import RunStatus, StepStatus
from tenants.guards import why_not_cancel, why_not_reset
from tenants.models import Condition, TenantState
from tenants.selectors import RECOMMENDATIONS, Situation, deciding_rule
from tenants.vocabulary import Recommended

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def tenant(state: str = TenantState.PROVISIONING, **fields: Any) -> Any:
    return SimpleNamespace(
        state=state,
        last_error=fields.get("last_error", ""),
        condition=fields.get("condition", Condition.PROGRESSING),
        decommission_requested_at=fields.get("decommission_requested_at"),
        failed_activity=fields.get("failed_activity", "create_database"),
        plan=fields.get("plan", "growth"),
    )


def run(status: str = RunStatus.RUNNING, **fields: Any) -> Any:
    return SimpleNamespace(
        status=status,
        compensating=fields.get("compensating", False),
        failed_step=fields.get("failed_step", ""),
        current_step="create_database",
        started_at=fields.get("started_at", NOW - timedelta(seconds=5)),
        paused_at=fields.get("paused_at"),
        paused_by=fields.get("paused_by", ""),
    )


def step(status: str = StepStatus.RUNNING, **fields: Any) -> Any:
    return SimpleNamespace(
        name="create_database",
        status=status,
        tries=fields.get("tries", 1),
        error=fields.get("error", ""),
        waiting_for=fields.get("waiting_for", ""),
        due_at=NOW - timedelta(seconds=3),
    )


def situation(t: Any, r: Any = None, current: Any = None, **extra: Any) -> Situation:
    s = Situation(
        tenant=t,
        run=r,
        current=current,
        seconds_since_heartbeat=extra.get("seconds"),
        now=NOW,
        timeout=30,
        max_tries=3,
        step_timeout=600,
    )
    if "failures" in extra:
        s._failures = extra["failures"]
    return s


S, C = TenantState, Condition
CASES: dict[str, tuple[Situation, Recommended]] = {
    "decommissioned": (situation(tenant(S.DECOMMISSIONED)), Recommended.NONE),
    "decommission_failed": (
        situation(tenant(S.ACTIVE, decommission_requested_at=NOW, last_error="boom")),
        Recommended.DECOMMISSION,
    ),
    "decommissioning": (
        situation(tenant(S.ACTIVE, decommission_requested_at=NOW)),
        Recommended.WAIT,
    ),
    "change_orphaned": (
        situation(tenant(S.UPDATING), run(RunStatus.ORPHANED)),
        Recommended.WAIT,
    ),
    "change_cancelling": (
        situation(tenant(S.UPDATING, last_error="resize timed out"), run(RunStatus.CANCELLING)),
        Recommended.WAIT,
    ),
    "change_stuck": (
        situation(tenant(S.UPDATING, last_error="resize timed out"), run()),
        Recommended.CANCEL,
    ),
    "wedged": (situation(tenant(last_error="stalled"), run()), Recommended.RESET),
    "handle_unchecked": (situation(tenant()), Recommended.WAIT),
    "cancelling": (situation(tenant(), run(RunStatus.CANCELLING)), Recommended.WAIT),
    "rolling_back": (
        situation(tenant(), run(compensating=True, failed_step="configure_dns")),
        Recommended.WAIT,
    ),
    "paused": (
        situation(tenant(condition=C.PAUSED), run(paused_at=NOW, paused_by="user:ada"), step()),
        Recommended.UNPAUSE,
    ),
    "lost": (
        situation(tenant(condition=C.LOST), run(), step(StepStatus.DISPATCHED, tries=2)),
        Recommended.WAIT,
    ),
    "retrying": (
        situation(tenant(condition=C.RETRYING), run(), step(StepStatus.WAITING, error="x")),
        Recommended.WAIT,
    ),
    "waiting_for_provider": (
        situation(tenant(), run(), step(StepStatus.DISPATCHED, waiting_for="database slot")),
        Recommended.WAIT,
    ),
    "queued": (situation(tenant(), run(), step(StepStatus.DISPATCHED)), Recommended.WAIT),
    "silent": (situation(tenant(), run(), step(), seconds=45.0), Recommended.WAIT),
    "long_running": (
        situation(tenant(), run(started_at=NOW - timedelta(hours=1)), step(), seconds=1.0),
        Recommended.CANCEL,
    ),
    "running": (situation(tenant(), run(), step(), seconds=1.0), Recommended.WAIT),
    "release_failed": (
        situation(tenant(S.PENDING, last_error="x", condition=C.RELEASE_FAILED)),
        Recommended.RESET,
    ),
    "error_blocks_retry": (situation(tenant(S.PENDING, last_error="x")), Recommended.RESET),
    "cancelled": (situation(tenant(S.PENDING), run(RunStatus.CANCELLED)), Recommended.RETRY),
    "idle": (situation(tenant(S.PENDING)), Recommended.RETRY),
    "given_up": (situation(tenant(S.FAILED), failures=3), Recommended.DECOMMISSION),
    "failed_cleanly": (situation(tenant(S.FAILED), failures=1), Recommended.RETRY),
    "change_failed": (
        situation(tenant(S.ACTIVE, condition=C.CHANGE_FAILED, last_error="resize failed")),
        Recommended.CHANGE_PLAN,
    ),
    "settled": (situation(tenant(S.ACTIVE)), Recommended.NONE),
}


def test_every_row_has_a_case() -> None:
    assert [rule.name for rule in RECOMMENDATIONS] == list(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_each_row_decides_its_situation(name: str) -> None:
    s, action = CASES[name]
    rule = deciding_rule(s)
    assert rule.name == name
    assert rule.action is action
    sentence = rule.reason(s)
    assert sentence.endswith(".") and "None" not in sentence, sentence


def test_the_suspended_tenant_has_nothing_to_do() -> None:
    assert deciding_rule(situation(tenant(S.SUSPENDED))).action is Recommended.NONE


# Every situation an updating tenant can be in: its handle's run (none, or each status), rolling
# back or not, a recorded error or not.
UPDATING_SITUATIONS = [
    (status, compensating, error)
    for status in [None, *RunStatus.values]
    for compensating in (False, True)
    for error in ("", "stalled at resize_database")
    if not (compensating and status != RunStatus.RUNNING)
]


@pytest.mark.parametrize(("status", "compensating", "error"), UPDATING_SITUATIONS)
def test_an_updating_tenant_is_never_told_to_do_what_is_refused(
    status: str | None, compensating: bool, error: str
) -> None:
    """Reset never applies to an updating tenant, and cancel only to a live run not already
    rolling back: what the table recommends is allowed (its guard says no reason), or is wait."""
    t = tenant(S.UPDATING, last_error=error)
    r = None if status is None else run(status, compensating=compensating)
    s = situation(t, r, step(), seconds=1.0)
    action = deciding_rule(s).action
    guards = {Recommended.CANCEL: why_not_cancel, Recommended.RESET: why_not_reset}
    assert action in (Recommended.WAIT, Recommended.UNPAUSE, *guards), action
    if action in guards:
        assert guards[action](t, r) is None, (action, guards[action](t, r))
