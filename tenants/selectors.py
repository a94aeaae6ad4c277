"""Reads that several doors need, each with a fixed number of queries."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from audit.models import Event
from audit.selectors import TenantDirectory
from controlplane.filters import (
    Problems,
    boolean,
    choices,
    filter_error,
    known_keys,
    one_of,
    text,
)
from provisioning.display import (
    kinds_released,
    step_status,
)
from provisioning.models import (
    Allocation,
    ResourceFinding,
    Run,
    RunStatus,
    StepExecution,
    StepStatus,
)

from .errors import ErrorCode, OperationError
from .formats import queued_text
from .models import (
    IN_FLIGHT,
    NEEDS_ATTENTION,
    ApprovalRequest,
    ApprovalStatus,
    Condition,
    Plan,
    Tenant,
    TenantCount,
    TenantState,
    normalise_slug,
)
from .operations import (
    OPERATIONS,
    get_operation,
    own_request_reason,
    permission_reason,
    permitted_names,
)
from .search import text_match
from .services import load_tenant
from .vocabulary import Recommended

S = TenantState


@dataclass
class Recommendation:
    action: Recommended
    reason: str


@dataclass(frozen=True)
class ActionState:
    """One operation as the asking user sees it (the contract's ``actions`` item)."""

    name: str
    label: str
    available: bool  # what the state and the recorded error allow, whoever asks
    permitted: bool  # whether the asking user (or token) may do it
    reason: str  # why not, when either is false; "" when both are true

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "available": self.available,
            "permitted": self.permitted,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class WaitingApproval:
    """An operation of this tenant waiting for a second person (the approval policy)."""

    request: ApprovalRequest
    label: str  # the operation's label
    approvers: list[str]  # who may approve: users with its permission, other than its author
    own_note: str  # to the author: why they cannot approve it ("" for anyone else)
    may_decide: bool  # the asking user has the operation's permission (approve or withdraw)

    @property
    def id(self) -> uuid.UUID:
        return self.request.id


def action_states(tenant: Tenant, run: Run | None, user: Any = None) -> list[ActionState]:
    """Every operation in the table's order, with whether it is available and permitted.

    ``run`` is the run the tenant's handle names (or None); ``user`` None means a trusted
    caller (the shell). Permissions are read once for all six.
    """
    allowed = permitted_names(user)
    states = []
    for op in OPERATIONS.values():
        why = op.check(tenant, run)
        permitted = op.name in allowed
        reasons = [why] if why else []
        if not permitted:
            reasons.append(permission_reason(op))
        states.append(
            ActionState(
                name=op.name,
                label=op.label,
                available=why is None,
                permitted=permitted,
                reason=" ".join(reasons),
            )
        )
    return states


def available_actions(tenant: Tenant, run: Run | None) -> list[str]:
    """What the state and recorded error allow, whoever asks (in the table's order)."""
    return [op.name for op in OPERATIONS.values() if op.check(tenant, run) is None]


def approvers(operation: str, requested_by: str) -> list[str]:
    """Who may approve a request of ``operation``: active users with its permission (their own
    or a group's, or superusers), other than its author (one query)."""
    permission = get_operation(operation).permission
    app_label, codename = permission.app_label, permission.codename
    perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename)
    return list(
        get_user_model()
        .objects.filter(is_active=True)
        .filter(
            Q(is_superuser=True) | Q(user_permissions__in=perm) | Q(groups__permissions__in=perm)
        )
        .exclude(username=requested_by)
        .order_by("username")
        .values_list("username", flat=True)
        .distinct()
    )


def waiting_approvals(tenant: Tenant, user: Any = None) -> list[WaitingApproval]:
    """The tenant's waiting requests with who may approve each; no query when none waits
    (``Tenant.awaiting_approval`` says so), else one, and one per request for its approvers."""
    if not tenant.awaiting_approval:
        return []
    rows = list(
        ApprovalRequest.objects.filter(tenant=tenant, status=ApprovalStatus.WAITING).order_by(
            "requested_at"
        )
    )
    for request in rows:
        request.tenant = tenant
    return waiting_views(rows, user)


def waiting_views(rows: list[ApprovalRequest], user: Any = None) -> list[WaitingApproval]:
    """Waiting requests as a person sees them: who may approve each, and whether they may."""
    me = user.get_username() if user is not None and user.is_authenticated else None
    allowed = permitted_names(user)
    found = []
    for request in rows:
        op = get_operation(request.operation)
        own = me == request.requested_by
        found.append(
            WaitingApproval(
                request=request,
                label=op.label,
                approvers=approvers(request.operation, request.requested_by),
                own_note=own_request_reason(op, request.requested_by) if own else "",
                may_decide=op.name in allowed,
            )
        )
    return found


@dataclass
class TenantDetail:
    tenant: Tenant
    run: Run | None
    steps: list[StepExecution]
    allocations: list[Allocation]
    # The run's steps in the one vocabulary every door shows (see ``step_status``).
    step_views: list[StepView]
    # What this run released (a rollback's work), newest first.
    released: list[Allocation]
    available_actions: list[str]
    recommendation: Recommendation
    seconds_since_heartbeat: float | None
    actions: list[ActionState] = field(default_factory=list)
    approvals: list[WaitingApproval] = field(default_factory=list)
    heartbeat_timeout: float = field(
        default_factory=lambda: settings.CONTROLPLANE_HEARTBEAT_TIMEOUT
    )
    # Reconciliation's open findings for this tenant (leaked / missing resources).
    drift: list[ResourceFinding] = field(default_factory=list)

    @property
    def decommissioning(self) -> bool:
        return bool(self.tenant.decommission_requested_at) and (
            self.tenant.state != S.DECOMMISSIONED
        )

    @property
    def settled(self) -> bool:
        """Nothing is moving: no live run and no decommission under way."""
        if self.decommissioning and not self.tenant.last_error:
            return False
        return not (
            self.run is not None
            and self.run.status in (RunStatus.RUNNING, RunStatus.CANCELLING)
            and self.tenant.state in (S.PROVISIONING, S.UPDATING)
            and not self.run.stalled_at
        )


def get_tenant(tenant_id: uuid.UUID | str) -> Tenant:
    return load_tenant(tenant_id)


def find_tenant(ref: str) -> Tenant:
    """A tenant named by id or by slug (the live one, else the newest decommissioned)."""
    ref = normalise_slug(ref, lookup=True)
    try:
        return get_tenant(uuid.UUID(ref))
    except (ValueError, OperationError):
        pass
    tenant = (
        Tenant.objects.filter(slug=ref).exclude(state=S.DECOMMISSIONED).first()
        or Tenant.objects.filter(slug=ref).order_by("-created_at").first()
    )
    if tenant is None:
        raise OperationError(ErrorCode.NOT_FOUND, f"No tenant has the slug or id {ref!r}.")
    return tenant


def tenant_detail(
    tenant_id: uuid.UUID | str, *, user: Any = None, now: datetime | None = None
) -> TenantDetail:
    """Everything the detail page and ``GET /tenants/{id}`` show, in three queries: the tenant
    (with whether reconciliation has open findings about it), its run's steps with the run, and
    its allocations; a fourth reads the findings when there are any.

    With ``user``, each action says whether that user may do it (their permissions read once);
    without, the caller is trusted (the shell). A request waiting for approval adds queries.
    """
    now = now or timezone.now()
    try:
        tid = uuid.UUID(str(tenant_id))
    except ValueError:
        raise OperationError(ErrorCode.NOT_FOUND, f"No tenant has the id {tenant_id!r}.") from None
    open_findings = ResourceFinding.objects.filter(tenant_id=OuterRef("pk"), resolved_at=None)
    tenant = Tenant.objects.annotate(has_drift=Exists(open_findings)).filter(pk=tid).first()
    if tenant is None:
        raise OperationError(ErrorCode.NOT_FOUND, f"No tenant has the id {tenant_id}.")
    # The handle's run, else the latest: its steps, each with the run (every run has its steps,
    # written with it), in one query.
    if tenant.workflow_id is not None:
        run_id: Any = tenant.workflow_id
    else:
        run_id = Subquery(Run.objects.filter(tenant_id=tid).order_by("-attempt").values("pk")[:1])
    steps: list[StepExecution] = list(
        StepExecution.objects.filter(run_id=run_id).select_related("run").order_by("position")
    )
    run = steps[0].run if steps else None
    if run is None and tenant.workflow_id is not None:
        run = Run.objects.filter(pk=tenant.workflow_id).first()
    for step in steps:
        step.run = run
    every = list(Allocation.objects.filter(tenant=tenant).order_by("allocated_at", "id"))
    allocations = [a for a in every if a.released_at is None]
    released: list[Allocation] = []
    if run is not None:
        released = sorted(
            (a for a in every if a.released_by_id == run.id),
            key=lambda a: (a.released_at, a.id),
            reverse=True,
        )
    handle_run = run if run is not None and tenant.workflow_id == run.id else None
    seconds = None
    if run is not None and run.status in (RunStatus.RUNNING, RunStatus.CANCELLING):
        current = next((s for s in steps if s.status == StepStatus.RUNNING), None)
        beat = (current.heartbeat_at if current else None) or run.heartbeat_at
        if beat:
            seconds = max(0.0, (now - beat).total_seconds())
    return TenantDetail(
        tenant=tenant,
        run=run,
        steps=steps,
        allocations=allocations,
        step_views=step_views(run, steps, every, now=now) if run is not None else [],
        released=released,
        available_actions=available_actions(tenant, handle_run),
        recommendation=recommend(tenant, handle_run, seconds, steps=steps),
        seconds_since_heartbeat=seconds,
        actions=action_states(tenant, handle_run, user),
        approvals=waiting_approvals(tenant, user),
        drift=(
            list(ResourceFinding.objects.filter(tenant_id=tenant.id, resolved_at__isnull=True))
            if tenant.has_drift
            else []
        ),
    )


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
    Rule(
        "change_stuck",
        lambda s: s.updating and bool(s.tenant.last_error),
        R.CANCEL,
        lambda s: (
            "The plan change is stuck (a recorded error while updating): cancel reverts, newest "
            "first, what it changed; the tenant stays active on its old plan. Then change plan "
            "again if still wanted."
        ),
    ),
    Rule(
        "change_cancelling",
        lambda s: s.updating and s.run is not None and s.run.status == RunStatus.CANCELLING,
        R.WAIT,
        lambda s: "Cancellation is reverting what the plan change changed.",
    ),
    Rule(
        "wedged",
        lambda s: s.provisioning and bool(s.tenant.last_error),
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
    )
    rule = deciding_rule(situation)
    return Recommendation(rule.action, rule.reason(situation))


@dataclass(frozen=True)
class FleetCounts:
    """How many tenants are in each state and condition: the list's chips, in one read."""

    by_state: dict[str, int]
    by_condition: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

    @property
    def needs_attention(self) -> int:
        return sum(self.by_condition[c] for c in NEEDS_ATTENTION)

    @property
    def in_flight(self) -> bool:
        """Whether any tenant is moving by itself (provisioning, rolling back,
        decommissioning): the console list keeps refreshing while one is."""
        return any(self.by_condition[c] for c in IN_FLIGHT)


def fleet_counts() -> FleetCounts:
    """Exact counts per state and per condition in one query that does not read the tenant
    table on PostgreSQL (``TenantCount``: deltas written by triggers in the transactions that
    move tenants), so it costs the same at 100,000 tenants as at ten."""
    by_state = dict.fromkeys(S.values, 0)
    by_condition = dict.fromkeys(Condition.values, 0)
    for (state, condition), n in TenantCount.objects.totals().items():
        by_state[state] = by_state.get(state, 0) + n
        by_condition[condition] = by_condition.get(condition, 0) + n
    return FleetCounts(by_state=by_state, by_condition=by_condition)


def tenant_events(tenant_id: uuid.UUID) -> QuerySet[Any]:
    return Event.objects.filter(tenant_id=tenant_id)


# --- the tenant list: one selector every door asks -----------------------------------------
#
# Every door (API, console, commands, admin, a bulk operation's ``filter``) hands what it was
# given to ``TenantFilters.parse`` and asks ``tenant_list``, so a filter means the same and a bad
# one is refused with the same message wherever it is typed (``controlplane.filters``).
#
# ``q`` is one phrase: a tenant matches when its slug, name or admin e-mail contains the whole
# of it (any case), or when ``q`` is its id pasted whole. ``corp acme`` does not find "Acme
# Corp" in any door (the admin's word-splitting search is replaced by this one).

TEXT_MAX = 200
# What a bulk operation's ``filter`` and every list door accept.
TENANT_FILTER_KEYS = ("state", "plan", "condition", "needs_attention", "q", "slug")


@dataclass(frozen=True)
class TenantFilters:
    states: tuple[str, ...] = ()
    plan: str = ""
    conditions: tuple[str, ...] = ()
    needs_attention: bool = False
    q: str = ""
    slug: str = ""

    @classmethod
    def parse(
        cls,
        *,
        state: Any = None,
        plan: Any = None,
        condition: Any = None,
        needs_attention: Any = None,
        q: Any = None,
        slug: Any = None,
    ) -> TenantFilters:
        """Check every filter at once; raise one ``validation_error`` naming each bad one.

        ``state`` and ``condition`` are one value, a comma list, or a list of them.
        """
        problems: Problems = {}
        parsed = cls(
            states=choices(state, "state", S.values, "state", problems),
            plan=one_of(plan, "plan", Plan.values, "plan", problems),
            conditions=choices(condition, "condition", Condition.values, "condition", problems),
            needs_attention=boolean(needs_attention, "needs_attention", problems),
            q=text(q, "q", TEXT_MAX, problems),
            slug=normalise_slug(text(slug, "slug", 63, problems), lookup=True),
        )
        if problems:
            raise filter_error(problems)
        return parsed

    @classmethod
    def from_mapping(cls, given: Any) -> TenantFilters:
        """A filter given as an object (a bulk operation's ``filter``): the same keys and the
        same checks as a list's query string; an unknown key is refused."""
        if not isinstance(given, dict):
            raise filter_error({"filter": ["filter must be an object."]})
        known_keys(given, TENANT_FILTER_KEYS)
        return cls.parse(**given)

    def as_mapping(self) -> dict[str, Any]:
        """The filters given, as ``from_mapping`` reads them back (what an approval keeps)."""
        given = {
            "state": self.state,
            "plan": self.plan,
            "condition": ",".join(self.conditions),
            "needs_attention": self.needs_attention,
            "q": self.q,
            "slug": self.slug,
        }
        return {k: v for k, v in given.items() if v}

    @property
    def state(self) -> str:
        return ",".join(self.states)

    @property
    def active(self) -> bool:
        return bool(
            self.states
            or self.plan
            or self.conditions
            or self.needs_attention
            or self.q
            or self.slug
        )


def tenant_list(filters: TenantFilters | None = None) -> QuerySet[Tenant]:
    """Tenants matching ``filters`` (unordered: each door pages it by its own keyset).

    ``q`` matches slug, name or admin e-mail containing it (case-insensitive; pg_trgm indexes
    back it on PostgreSQL, see ``tenants.search``), or a tenant's id pasted whole.
    """
    filters = filters or TenantFilters()
    qs = Tenant.objects.all()
    if filters.states:
        qs = qs.filter(state__in=filters.states)
    if filters.plan:
        qs = qs.filter(plan=filters.plan)
    if filters.conditions:
        qs = qs.filter(condition__in=filters.conditions)
    if filters.needs_attention:
        qs = qs.filter(condition__in=NEEDS_ATTENTION)
    if filters.slug:
        qs = qs.filter(slug=filters.slug)
    if filters.q:
        match = text_match(filters.q, qs.db)
        with contextlib.suppress(ValueError):  # an id pasted into the search box
            match |= Q(pk=uuid.UUID(filters.q))
        qs = qs.filter(match)
    return qs


class AuditTenantDirectory(TenantDirectory):
    """What the audit app asks about tenants (plugged in by ``tenants/apps.py``)."""

    def ids_for(self, ref: str) -> list[uuid.UUID]:
        """An id (of a tenant, or of one whose events remain), or a slug (every tenant that
        ever had it)."""
        try:
            tenant_id = uuid.UUID(ref)
        except ValueError:
            newest_first = Tenant.objects.filter(slug=normalise_slug(ref, lookup=True))
            newest_first = newest_first.order_by("-created_at", "-id")
            return list(newest_first.values_list("pk", flat=True))
        known = (
            Tenant.objects.filter(pk=tenant_id).exists()
            or Event.objects.filter(tenant_id=tenant_id).exists()
        )
        return [tenant_id] if known else []

    def slugs(self, tenant_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
        return dict(Tenant.objects.filter(pk__in=set(tenant_ids)).values_list("id", "slug"))

    def all_ids(self) -> QuerySet[Any]:
        return Tenant.objects.values_list("pk", flat=True)


# --- step statuses and run history ----------------------------------------------------------

# The step and run words every door shows live in ``provisioning/display.py``.


@dataclass
class StepView:
    name: str
    position: int
    status: str
    reused: bool
    tries: int
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    duration_ms: int | None
    error: str
    waiting_for: str = ""
    # A dispatched step of a live run: seconds its try has waited for a worker since it was
    # due (None otherwise). Queue wait is load, not failure (docs/reliability.md).
    queued_seconds: float | None = None
    # Times the watchdog published the step's message again for the same try.
    republished: int = 0


def queued_seconds(step: StepExecution, now: datetime) -> float | None:
    """How long a dispatched try has waited for a worker (None: not queued, or not yet due)."""
    if step.status != StepStatus.DISPATCHED or step.due_at is None or step.due_at > now:
        return None
    return (now - step.due_at).total_seconds()


@dataclass
class RunView:
    run: Run
    steps: list[StepView]
    allocated: list[Allocation]
    released: list[Allocation]

    def __getattr__(self, name: str) -> Any:  # attempt, status, actor, ... of the run
        return getattr(self.run, name)


def step_views(
    run: Run,
    steps: list[StepExecution],
    allocations: list[Allocation],
    *,
    now: datetime | None = None,
) -> list[StepView]:
    released = kinds_released(run, allocations)
    now = now or timezone.now()
    live = run.status == RunStatus.RUNNING and not run.compensating
    return [
        StepView(
            name=s.name,
            position=s.position,
            status=step_status(s, run, released),
            reused=s.reused,
            tries=s.tries,
            started_at=s.started_at,
            finished_at=s.finished_at,
            heartbeat_at=s.heartbeat_at,
            duration_ms=s.duration_ms,
            error=s.error,
            waiting_for=s.waiting_for if s.status == StepStatus.DISPATCHED else "",
            queued_seconds=queued_seconds(s, now) if live else None,
            republished=s.republished,
        )
        for s in steps
    ]


def tenant_runs(
    tenant: Tenant | uuid.UUID | str, *, except_run: uuid.UUID | None = None
) -> list[RunView]:
    """Every run of the tenant (but ``except_run``, the one a page already shows), newest
    first, with steps and what each allocated and released: three queries whatever the number
    of runs, one when there is none, plus one when given an id."""
    if not isinstance(tenant, Tenant):
        tenant = get_tenant(tenant)
    runs = list(Run.objects.filter(tenant=tenant).exclude(pk=except_run).order_by("-attempt"))
    if not runs:
        return []
    steps: dict[uuid.UUID, list[StepExecution]] = {r.id: [] for r in runs}
    for s in StepExecution.objects.filter(run_id__in=steps).order_by("run", "position"):
        steps[s.run_id].append(s)
    allocations = list(Allocation.objects.filter(tenant=tenant).order_by("allocated_at", "id"))
    return [
        RunView(
            run=r,
            steps=step_views(r, steps[r.id], allocations),
            allocated=[a for a in allocations if a.allocated_by_id == r.id],
            released=[a for a in allocations if a.released_by_id == r.id],
        )
        for r in runs
    ]
