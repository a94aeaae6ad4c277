"""What to do about a tenant: the reset runbook's decision table (``RECOMMENDATIONS``), one row
per situation, read off the tenant, its handle run and the step at work (``recommend``).

Every door shows the recommendation the detail read carries (``tenants.selectors``); a row is
data (a name, a condition, an action and its sentence), and ``tests/tenants/test_recommend_table``
holds a case for each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from provisioning.models import LIVE_RUN_STATUSES, Run, RunStatus, StepExecution, StepStatus

from .formats import queued_text
from .models import Condition, Tenant, TenantState
from .vocabulary import Recommended

S = TenantState


@dataclass
class Recommendation:
    action: Recommended
    reason: str


def queued_seconds(step: StepExecution, now: datetime) -> float | None:
    """How long a dispatched try has waited for a worker (None: not queued, or not yet due)."""
    if step.status != StepStatus.DISPATCHED or step.due_at is None or step.due_at > now:
        return None
    return (now - step.due_at).total_seconds()


@dataclass
class Situation:
    """What the reset runbook's decision table reads: the tenant, its handle run and the step
    at work, the heartbeat and the limits. ``failures`` is read only when a row asks."""

    tenant: Tenant
    run: Run | None
    current: StepExecution | None
    seconds_since_heartbeat: float | None
    now: datetime
    timeout: float
    max_tries: int
    step_timeout: float
    # The count of ``failures`` when the caller has read it already (the detail's statement).
    known_failures: int | None = None

    @property
    def state(self) -> str:
        return self.tenant.state

    @property
    def provisioning(self) -> bool:
        """A run is at work: a provisioning, or a plan change (``updating``)."""
        return self.tenant.state in (S.PROVISIONING, S.UPDATING)

    @property
    def updating(self) -> bool:
        return self.tenant.state == S.UPDATING

    @property
    def pending(self) -> bool:
        return self.tenant.state == S.PENDING

    @property
    def elapsed(self) -> float:
        return (self.now - self.run.started_at).total_seconds() if self.run else 0.0

    @property
    def queued(self) -> bool:
        return self.current is not None and self.current.status == StepStatus.DISPATCHED

    @property
    def failures(self) -> int:
        """Failed runs that stopped at the same step as the last one."""
        if self.known_failures is not None:
            return self.known_failures
        if not hasattr(self, "_failures"):
            self._failures = self.tenant.runs.filter(
                status=RunStatus.FAILED, failed_step=self.tenant.failed_activity
            ).count()
        return self._failures


@dataclass(frozen=True)
class Rule:
    """One row of the decision table: when it applies, what to do, and the sentence why."""

    name: str
    when: Callable[[Situation], bool]
    action: Recommended
    reason: Callable[[Situation], str]


def _queued_for(s: Situation) -> str:
    return queued_text(queued_seconds(s.current, s.now) or 0.0) if s.current else ""


R = Recommended
# The reset runbook as data, read top to bottom: the first row whose ``when`` holds decides.
# Every row has a test (tests/tenants/test_recommend_table.py).
RECOMMENDATIONS: tuple[Rule, ...] = (
    Rule(
        "decommissioned",
        lambda s: s.state == S.DECOMMISSIONED,
        R.NONE,
        lambda s: "The tenant is decommissioned; its slug is free again.",
    ),
    Rule(
        "decommission_failed",
        lambda s: bool(s.tenant.decommission_requested_at and s.tenant.last_error),
        R.DECOMMISSION,
        lambda s: (
            "Decommission could not release everything; ask for it again once the cause is fixed."
        ),
    ),
    Rule(
        "decommissioning",
        lambda s: bool(s.tenant.decommission_requested_at),
        R.WAIT,
        lambda s: "Decommission is releasing the tenant's resources.",
    ),
    # An updating tenant's way out is never reset (provisioning only); cancel needs a live run
    # that is not already rolling back. Each row below recommends only what is allowed then.
    Rule(
        "change_orphaned",
        lambda s: s.updating and (s.run is None or s.run.status not in LIVE_RUN_STATUSES),
        R.WAIT,
        lambda s: (
            "The plan change's run is gone (its handle names no live run): the watchdog fails "
            "the change, reverting newest first what it changed, and the tenant ends active on "
            "its old plan. Then change plan again if still wanted."
        ),
    ),
    Rule(
        "change_cancelling",
        lambda s: s.updating and s.run.status == RunStatus.CANCELLING,
        R.WAIT,
        lambda s: "Cancellation is reverting what the plan change changed.",
    ),
    Rule(
        "change_stuck",
        lambda s: s.updating and bool(s.tenant.last_error) and not s.run.compensating,
        R.CANCEL,
        lambda s: (
            "The plan change is stuck (a recorded error while updating): cancel reverts, newest "
            "first, what it changed; the tenant stays active on its old plan. Then change plan "
            "again if still wanted."
        ),
    ),
    Rule(
        "wedged",
        lambda s: s.state == S.PROVISIONING and bool(s.tenant.last_error),
        R.RESET,
        lambda s: (
            "The run is wedged (a recorded error with the tenant still provisioning): "
            "reset clears it, then retry."
        ),
    ),
    Rule(
        "handle_unchecked",
        lambda s: s.provisioning and s.run is None,
        R.WAIT,
        lambda s: "The watchdog is checking the workflow handle.",
    ),
    Rule(
        "cancelling",
        lambda s: s.provisioning and s.run.status == RunStatus.CANCELLING,
        R.WAIT,
        lambda s: "Cancellation is rolling back what was allocated.",
    ),
    Rule(
        "rolling_back",
        lambda s: s.provisioning and s.run.compensating,
        R.WAIT,
        lambda s: f"{s.run.failed_step} failed; the run is rolling back.",
    ),
    Rule(
        "paused",
        lambda s: s.provisioning and s.run.paused_at is not None,
        R.UNPAUSE,
        lambda s: (
            f"{s.run.paused_by or 'An operator'} paused the run; nothing moves until unpause "
            f"(at {s.run.current_step}). Cancel still works."
        ),
    ),
    # A try sent again (lost, or failed with tries left) has no heartbeat of its own yet:
    # say what is happening rather than how long the last try has been silent.
    Rule(
        "lost",
        lambda s: s.provisioning and s.tenant.condition == Condition.LOST and bool(s.current),
        R.WAIT,
        lambda s: (
            f"{s.current.name}: the step's try was lost; resending "
            f"(try {s.current.tries} of {s.max_tries}). If this try is lost too the watchdog "
            "flags the run as stalled."
        ),
    ),
    Rule(
        "retrying",
        lambda s: s.provisioning and s.tenant.condition == Condition.RETRYING and bool(s.current),
        R.WAIT,
        lambda s: (
            f"{s.current.name} failed a try ({s.current.error or 'no message'}); retrying "
            f"after a pause (try {s.current.tries} of {s.max_tries})."
        ),
    ),
    Rule(
        "waiting_for_provider",
        lambda s: s.provisioning and s.queued and bool(s.current.waiting_for),
        R.WAIT,
        lambda s: (
            f"{s.current.name} is {_queued_for(s)}, waiting for {s.current.waiting_for}. "
            "Waiting spends no try."
        ),
    ),
    # Queued: load, not failure. No heartbeat is expected until a worker starts it.
    Rule(
        "queued",
        lambda s: s.provisioning and s.queued,
        R.WAIT,
        lambda s: (
            f"{s.run.current_step} is {_queued_for(s)}, try {s.current.tries}. Waiting "
            "in the queue spends no try."
        ),
    ),
    Rule(
        "silent",
        lambda s: (
            s.provisioning
            and s.seconds_since_heartbeat is not None
            and s.seconds_since_heartbeat > s.timeout
        ),
        R.WAIT,
        lambda s: (
            f"No heartbeat for {s.seconds_since_heartbeat:.0f}s (timeout {s.timeout:g}s); "
            "the watchdog will dispatch the step again or flag the run as stalled."
        ),
    ),
    Rule(
        "long_running",
        lambda s: s.provisioning and s.elapsed > s.step_timeout,
        R.CANCEL,
        lambda s: (
            f"The run has been going for {s.elapsed / 60:.0f} minutes while heartbeating; "
            "if you no longer want it, cancel."
        ),
    ),
    Rule(
        "running",
        lambda s: s.provisioning,
        R.WAIT,
        lambda s: f"{s.run.current_step} is running (try {s.current.tries if s.current else 1}).",
    ),
    Rule(
        "release_failed",
        lambda s: (
            s.pending
            and bool(s.tenant.last_error)
            and s.tenant.condition == Condition.RELEASE_FAILED
        ),
        R.RESET,
        lambda s: (
            "A release kept failing and the resource is still held (see Allocations). "
            "Once the cause is fixed: reset clears the error and keeps what is held, so a retry "
            "reuses it; or decommission, which tries the release again."
        ),
    ),
    Rule(
        "error_blocks_retry",
        lambda s: s.pending and bool(s.tenant.last_error),
        R.RESET,
        lambda s: "A recorded error blocks retry: reset, then retry.",
    ),
    Rule(
        "cancelled",
        lambda s: s.pending and s.run is not None and s.run.status == RunStatus.CANCELLED,
        R.RETRY,
        lambda s: (
            "Provisioning was cancelled and everything it allocated was released. Retry "
            "provisioning if this tenant is still wanted (a new attempt starts from the "
            "beginning); decommission it if not (its slug becomes free)."
        ),
    ),
    Rule(
        "idle",
        lambda s: s.pending,
        R.RETRY,
        lambda s: "Nothing is running; retry starts provisioning.",
    ),
    Rule(
        "given_up",
        lambda s: s.state == S.FAILED and s.failures >= 3,
        R.DECOMMISSION,
        lambda s: (
            f"{s.tenant.failed_activity} has failed in {s.failures} attempts; if you "
            "have given up, decommission."
        ),
    ),
    Rule(
        "failed_cleanly",
        lambda s: s.state == S.FAILED,
        R.RETRY,
        lambda s: (
            f"{s.tenant.failed_activity or 'A step'} failed cleanly and "
            "everything was rolled back: retry."
        ),
    ),
    Rule(
        "change_failed",
        lambda s: s.state == S.ACTIVE and s.tenant.condition == Condition.CHANGE_FAILED,
        R.CHANGE_PLAN,
        lambda s: (
            f"The last plan change failed ({s.tenant.last_error.splitlines()[0]}); every step "
            f"was reverted and the tenant is active on its {s.tenant.plan} plan. Change plan "
            "again once the cause is fixed (starting a change clears this)."
        ),
    ),
    Rule("settled", lambda s: True, R.NONE, lambda s: "Nothing needs doing."),
)


def deciding_rule(situation: Situation) -> Rule:
    return next(rule for rule in RECOMMENDATIONS if rule.when(situation))


def recommend(
    tenant: Tenant,
    run: Run | None,
    seconds_since_heartbeat: float | None,
    *,
    steps: list[StepExecution] | None = None,
    failures: int | None = None,
) -> Recommendation:
    """The decision table of the reset runbook (``RECOMMENDATIONS``), read off the live
    situation."""
    current = None
    if run is not None:
        current = next((s for s in steps or [] if s.name == run.current_step), None)
    situation = Situation(
        tenant=tenant,
        run=run,
        current=current,
        seconds_since_heartbeat=seconds_since_heartbeat,
        now=timezone.now(),
        timeout=settings.CONTROLPLANE_HEARTBEAT_TIMEOUT,
        max_tries=settings.CONTROLPLANE_STEP_MAX_TRIES,
        step_timeout=settings.CONTROLPLANE_STEP_TIMEOUT,
        known_failures=failures,
    )
    rule = deciding_rule(situation)
    return Recommendation(rule.action, rule.reason(situation))
