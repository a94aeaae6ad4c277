"""Reads that several doors need, each with a fixed number of queries: a tenant's detail with
what may be done next, its runs and events, the approvals waiting on it, the fleet's counts.

Split by concept: the decision table is ``tenants.decisions`` and the tenant list's filter
parser and selector ``tenants.lists``; their names are re-exported here (``X as X``), so a door
asks this one module for every read."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit.models import Event
from audit.selectors import TenantDirectory
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

from .decisions import (
    RECOMMENDATIONS as RECOMMENDATIONS,
)
from .decisions import (
    Recommendation as Recommendation,
)
from .decisions import (
    Rule as Rule,
)
from .decisions import (
    Situation as Situation,
)
from .decisions import (
    deciding_rule as deciding_rule,
)
from .decisions import (
    queued_seconds as queued_seconds,
)
from .decisions import (
    recommend as recommend,
)
from .detail_read import read_detail
from .errors import ErrorCode, OperationError
from .lists import (
    TENANT_FILTER_KEYS as TENANT_FILTER_KEYS,
)
from .lists import (
    TEXT_MAX as TEXT_MAX,
)
from .lists import (
    TenantFilters as TenantFilters,
)
from .lists import (
    tenant_list as tenant_list,
)
from .models import (
    IN_FLIGHT,
    NEEDS_ATTENTION,
    ApprovalRequest,
    ApprovalStatus,
    Condition,
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
from .services import load_tenant
from .vocabulary import Recommended as Recommended

S = TenantState


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
    # Asked for by the console (``tenant_detail``'s ``events`` and ``history``): the newest
    # events, as many as asked for; the other runs, newest first.
    events: list[Event] | None = None
    history: list[RunView] | None = None

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
    tenant_id: uuid.UUID | str,
    *,
    user: Any = None,
    now: datetime | None = None,
    events: int = 0,
    history: bool = False,
) -> TenantDetail:
    """Everything the detail page and ``GET /tenants/{id}`` show, in one statement: the tenant
    (with whether reconciliation has open findings about it), its run, the run's steps and its
    allocations (``tenants.detail_read``); a second reads the findings when there are any.

    With ``user``, each action says whether that user may do it (their permissions read once);
    without, the caller is trusted (the shell). A request waiting for approval adds queries.
    In the same statement, the console's: with ``events``, the tenant's newest ``events``
    events (``TenantDetail.events``); with ``history``, its other runs (``.history``).
    """
    now = now or timezone.now()
    try:
        tid = uuid.UUID(str(tenant_id))
    except ValueError:
        raise OperationError(ErrorCode.NOT_FOUND, f"No tenant has the id {tenant_id!r}.") from None
    rows = read_detail(tid, events=events, history=history)
    if rows is None:
        raise OperationError(ErrorCode.NOT_FOUND, f"No tenant has the id {tenant_id}.")
    tenant, run, steps, every = rows.tenant, rows.run, rows.steps, rows.allocations
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
        recommendation=recommend(tenant, handle_run, seconds, steps=steps, failures=rows.failures),
        seconds_since_heartbeat=seconds,
        actions=action_states(tenant, handle_run, user),
        approvals=waiting_approvals(tenant, user),
        drift=(
            list(ResourceFinding.objects.filter(tenant_id=tenant.id, resolved_at__isnull=True))
            if tenant.has_drift
            else []
        ),
        events=rows.events,
        history=run_views(rows.history, every) if rows.history is not None else None,
    )


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
    return run_views([(r, steps[r.id]) for r in runs], allocations)


def run_views(
    runs: list[tuple[Run, list[StepExecution]]], allocations: list[Allocation]
) -> list[RunView]:
    """Each run with its steps in the one vocabulary and what it allocated and released, of
    the tenant's ``allocations`` (every one, oldest first)."""
    return [
        RunView(
            run=r,
            steps=step_views(r, steps, allocations),
            allocated=[a for a in allocations if a.allocated_by_id == r.id],
            released=[a for a in allocations if a.released_by_id == r.id],
        )
        for r, steps in runs
    ]
