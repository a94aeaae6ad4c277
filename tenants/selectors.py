"""Reads that several doors need, each with a fixed number of queries."""

from __future__ import annotations

import contextlib
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from provisioning.models import (
    STEP_KIND,
    Allocation,
    ResourceFinding,
    Run,
    RunStatus,
    StepExecution,
    StepStatus,
)

from .errors import OperationError
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

S = TenantState


@dataclass
class Recommendation:
    action: str  # wait, cancel, reset, retry, decommission, none
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
    app_label, codename = get_operation(operation).permission.split(".")
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
            and self.tenant.state == S.PROVISIONING
            and not self.run.stalled_at
        )


def get_tenant(tenant_id: uuid.UUID | str) -> Tenant:
    return load_tenant(tenant_id)


def find_tenant(ref: str) -> Tenant:
    """A tenant named by id or by slug (the live one, else the newest decommissioned)."""
    try:
        return get_tenant(uuid.UUID(ref))
    except (ValueError, OperationError):
        pass
    tenant = (
        Tenant.objects.filter(slug=ref).exclude(state=S.DECOMMISSIONED).first()
        or Tenant.objects.filter(slug=ref).order_by("-created_at").first()
    )
    if tenant is None:
        raise OperationError("not_found", f"No tenant has the slug or id {ref!r}.")
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
        raise OperationError("not_found", f"No tenant has the id {tenant_id!r}.") from None
    open_findings = ResourceFinding.objects.filter(tenant_id=OuterRef("pk"), resolved_at=None)
    tenant = Tenant.objects.annotate(has_drift=Exists(open_findings)).filter(pk=tid).first()
    if tenant is None:
        raise OperationError("not_found", f"No tenant has the id {tenant_id}.")
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


def recommend(
    tenant: Tenant,
    run: Run | None,
    seconds_since_heartbeat: float | None,
    *,
    steps: list[StepExecution] | None = None,
) -> Recommendation:
    """The decision table of the reset runbook, read off the live situation."""
    timeout = settings.CONTROLPLANE_HEARTBEAT_TIMEOUT
    max_tries = settings.CONTROLPLANE_STEP_MAX_TRIES
    current = None
    if run is not None:
        current = next((s for s in steps or [] if s.name == run.current_step), None)
    if tenant.state == S.DECOMMISSIONED:
        return Recommendation("none", "The tenant is decommissioned; its slug is free again.")
    if tenant.decommission_requested_at:
        if tenant.last_error:
            return Recommendation(
                "decommission",
                "Decommission could not release everything; "
                "ask for it again once the cause is fixed.",
            )
        return Recommendation("wait", "Decommission is releasing the tenant's resources.")
    if tenant.state == S.PROVISIONING:
        if tenant.last_error:
            return Recommendation(
                "reset",
                "The run is wedged (a recorded error with the tenant still provisioning): "
                "reset clears it, then retry.",
            )
        if run is None:
            return Recommendation("wait", "The watchdog is checking the workflow handle.")
        if run.status == RunStatus.CANCELLING:
            return Recommendation("wait", "Cancellation is rolling back what was allocated.")
        if run.compensating:
            return Recommendation("wait", f"{run.failed_step} failed; the run is rolling back.")
        if run.paused_at is not None:
            return Recommendation(
                "unpause",
                f"{run.paused_by or 'An operator'} paused the run; nothing moves until unpause "
                f"(at {run.current_step}). Cancel still works.",
            )
        # A try sent again (lost, or failed with tries left) has no heartbeat of its own yet:
        # say what is happening rather than how long the last try has been silent.
        if tenant.condition == Condition.LOST and current is not None:
            return Recommendation(
                "wait",
                f"{current.name}: the step's try was lost; resending "
                f"(try {current.tries} of {max_tries}). If this try is lost too the watchdog "
                "flags the run as stalled.",
            )
        if tenant.condition == Condition.RETRYING and current is not None:
            return Recommendation(
                "wait",
                f"{current.name} failed a try ({current.error or 'no message'}); retrying "
                f"after a pause (try {current.tries} of {max_tries}).",
            )
        if current is not None and current.status == StepStatus.DISPATCHED and current.waiting_for:
            waited = queued_seconds(current, timezone.now()) or 0.0
            return Recommendation(
                "wait",
                f"{current.name} is {queued_text(waited)}, waiting for {current.waiting_for}. "
                "Waiting spends no try.",
            )
        if current is not None and current.status == StepStatus.DISPATCHED:
            # Queued: load, not failure. No heartbeat is expected until a worker starts it.
            waited = queued_seconds(current, timezone.now()) or 0.0
            return Recommendation(
                "wait",
                f"{run.current_step} is {queued_text(waited)}, try {current.tries}. Waiting "
                "in the queue spends no try.",
            )
        if seconds_since_heartbeat is not None and seconds_since_heartbeat > timeout:
            return Recommendation(
                "wait",
                f"No heartbeat for {seconds_since_heartbeat:.0f}s (timeout {timeout:g}s); the "
                "watchdog will dispatch the step again or flag the run as stalled.",
            )
        elapsed = (timezone.now() - run.started_at).total_seconds()
        if elapsed > settings.CONTROLPLANE_STEP_TIMEOUT:
            return Recommendation(
                "cancel",
                f"The run has been going for {elapsed / 60:.0f} minutes while heartbeating; if "
                "you no longer want it, cancel.",
            )
        return Recommendation(
            "wait", f"{run.current_step} is running (try {current.tries if current else 1})."
        )
    if tenant.state == S.PENDING:
        if tenant.last_error and tenant.condition == Condition.RELEASE_FAILED:
            return Recommendation(
                "reset",
                "A release kept failing and the resource is still held (see Allocations). Once "
                "the cause is fixed: reset clears the error and keeps what is held, so a retry "
                "reuses it; or decommission, which tries the release again.",
            )
        if tenant.last_error:
            return Recommendation("reset", "A recorded error blocks retry: reset, then retry.")
        if run is not None and run.status == RunStatus.CANCELLED:
            return Recommendation(
                "retry",
                "Provisioning was cancelled and everything it allocated was released. Retry "
                "provisioning if this tenant is still wanted (a new attempt starts from the "
                "beginning); decommission it if not (its slug becomes free).",
            )
        return Recommendation("retry", "Nothing is running; retry starts provisioning.")
    if tenant.state == S.FAILED:
        failures = tenant.runs.filter(
            status=RunStatus.FAILED, failed_step=tenant.failed_activity
        ).count()
        if failures >= 3:
            return Recommendation(
                "decommission",
                f"{tenant.failed_activity} has failed in {failures} attempts; if you have given "
                "up, decommission.",
            )
        return Recommendation(
            "retry",
            f"{tenant.failed_activity or 'A step'} failed cleanly and "
            "everything was rolled back: retry.",
        )
    return Recommendation("none", "Nothing needs doing.")


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
    from audit.models import Event

    return Event.objects.filter(tenant_id=tenant_id)


def tenant_queryset(filters: dict[str, Any] | None = None) -> QuerySet[Tenant]:
    """The tenants a bulk operation's filter names (state, plan, q, condition,
    needs_attention), newest first: the tenant-list selector below, so a filter means the same
    as on every list."""
    return tenant_list(TenantFilters.parse(**(filters or {}))).order_by("-created_at", "-id")


# --- lists: one selector each for the tenant list and the audit feed -----------------------
#
# Every door (API, console, commands, admin) parses its own input into these filters and asks
# the same selector, so ``q``, a slug or a type prefix means the same thing wherever it is typed.

TEXT_MAX = 200


def clean_text(value: Any, max_length: int = TEXT_MAX) -> str:
    """A value fit to filter on: text, trimmed, bounded, without control characters (a NUL in
    a search box is never meant, and PostgreSQL refuses it in a query)."""
    if value is None:
        return ""
    text = "".join(ch for ch in str(value) if unicodedata.category(ch) not in ("Cc", "Cs"))
    return text.strip()[:max_length]


def _bool(value: Any, field_name: str) -> bool:
    if value is None or value == "" or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise OperationError(
        "validation_error",
        f"{field_name} must be true or false.",
        {field_name: ["Must be true or false."]},
    )


@dataclass(frozen=True)
class TenantFilters:
    state: str = ""
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
        """Check every filter at once; raise ``validation_error`` naming each bad one.

        ``condition`` is one condition, a comma list, or a list of them.
        """
        errors: dict[str, list[str]] = {}
        state_ = clean_text(state, 40)
        if state_ and state_ not in S.values:
            errors["state"] = [f"Unknown state {state_!r}; states are {', '.join(S.values)}."]
        plan_ = clean_text(plan, 40)
        if plan_ and plan_ not in Plan.values:
            errors["plan"] = [f"Unknown plan {plan_!r}; plans are {', '.join(Plan.values)}."]
        raw = condition if isinstance(condition, list | tuple) else [condition]
        wanted: list[str] = []
        for part in raw:
            for name in clean_text(part, 400).split(","):
                name = name.strip()
                if name and name not in wanted:
                    wanted.append(name)
        unknown = [c for c in wanted if c not in Condition.values]
        if unknown:
            errors["condition"] = [
                f"Unknown condition {', '.join(map(repr, unknown))}; conditions are "
                f"{', '.join(Condition.values)}."
            ]
        try:
            attention = _bool(needs_attention, "needs_attention")
        except OperationError as exc:
            errors.update(exc.details)
            attention = False
        if errors:
            raise OperationError("validation_error", "Some filters are not valid.", errors)
        return cls(
            state=state_,
            plan=plan_,
            conditions=tuple(wanted),
            needs_attention=attention,
            q=clean_text(q),
            # Slugs are lowercase; what was typed around one is not part of it.
            slug=clean_text(slug, 63).lower(),
        )

    @property
    def active(self) -> bool:
        return bool(
            self.state
            or self.plan
            or self.conditions
            or self.needs_attention
            or self.q
            or self.slug
        )


def tenant_list(filters: TenantFilters | None = None) -> QuerySet[Tenant]:
    """Tenants matching ``filters`` (unordered: each door pages it by its own keyset).

    ``q`` matches slug, name or admin e-mail anywhere (case-insensitive; pg_trgm indexes back
    it on PostgreSQL, see ``tenants.search``), or a tenant's id pasted whole.
    """
    filters = filters or TenantFilters()
    qs = Tenant.objects.all()
    if filters.state:
        qs = qs.filter(state=filters.state)
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


# Step-level chatter: what a saga does many times per run. Hidden on request in the feed.
STEP_CHATTER: tuple[str, ...] = (
    "tenant.provisioning.step_started",
    "tenant.provisioning.step_completed",
    "tenant.resource.allocated",
    "tenant.resource.reused",
    "tenant.resource.released",
)


@dataclass(frozen=True)
class AuditFilters:
    type: str = ""
    tenant: str = ""  # an id or a slug
    actor: str = ""
    since: datetime | None = None
    hide_steps: bool = False

    @classmethod
    def parse(
        cls,
        *,
        type: Any = None,
        tenant: Any = None,
        actor: Any = None,
        since: Any = None,
        hide_steps: Any = None,
    ) -> AuditFilters:
        """Check the feed's filters; ``since`` is ISO 8601 (UTC when it names no zone)."""
        errors: dict[str, list[str]] = {}
        moment: datetime | None = None
        if isinstance(since, datetime):
            moment = since
        elif clean_text(since, 40):
            text = clean_text(since, 40)
            try:
                moment = parse_datetime(text)
            except ValueError:  # well-formed but impossible, like month 13
                moment = None
            if moment is None:
                errors["since"] = [f"{text!r} is not a date and time; use e.g. 2026-05-17T09:30."]
        if moment is not None:
            if timezone.is_naive(moment):
                moment = moment.replace(tzinfo=UTC)
            try:
                moment = moment.astimezone(UTC)
            except OverflowError:
                errors["since"] = ["Out of range."]
                moment = None
        try:
            hide = _bool(hide_steps, "hide_steps")
        except OperationError as exc:
            errors.update(exc.details)
            hide = False
        if errors:
            raise OperationError("validation_error", "Some filters are not valid.", errors)
        return cls(
            type=clean_text(type, 80),
            tenant=clean_text(tenant, 100).lower(),
            actor=clean_text(actor, 200),
            since=moment,
            hide_steps=hide,
        )


def audit_feed(filters: AuditFilters | None = None) -> QuerySet[Any]:
    """The audit feed matching ``filters`` (unordered; the doors page it newest first).

    ``type`` is a whole type or a dotted prefix; ``tenant`` an id or a slug (every tenant that
    ever had it); ``actor`` an exact actor (``user:ada``) or, without a colon, a name under any
    prefix (``ada`` finds ``user:ada`` and ``token:ada``).
    """
    from audit.models import Event

    filters = filters or AuditFilters()
    qs = Event.objects.all()
    if filters.type:
        qs = qs.of_type(filters.type)
    if filters.tenant:
        try:
            qs = qs.filter(tenant_id=uuid.UUID(filters.tenant))
        except ValueError:
            qs = qs.filter(tenant_id__in=Tenant.objects.filter(slug=filters.tenant).values("pk"))
    if filters.actor:
        if ":" in filters.actor or filters.actor == "system":
            qs = qs.filter(actor=filters.actor)
        else:
            qs = qs.filter(actor__in=[f"user:{filters.actor}", f"token:{filters.actor}"])
    if filters.since is not None:
        qs = qs.filter(occurred_at__gte=filters.since)
    if filters.hide_steps:
        qs = qs.exclude(type__in=STEP_CHATTER)
    return qs


# --- step statuses and run history ----------------------------------------------------------

# The one step-status vocabulary every door shows (console, API, admin, commands). It is the
# saga's own status read in the light of its run: a run that is no longer live never shows a
# step as running or dispatched.
STEP_STATUSES: tuple[str, ...] = (
    "waiting",
    "dispatched",
    "running",
    "stalled",
    "completed",
    "failed",
    "skipped",
    "abandoned",
    "compensated",
)


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
            return "compensated"
        return "completed"
    if step.status in (StepStatus.DISPATCHED, StepStatus.RUNNING):
        if not live or run.status == RunStatus.CANCELLING or run.compensating:
            return "abandoned"
        if run.stalled_at is not None:
            return "stalled"
        return str(step.status)
    if step.status == StepStatus.SKIPPED:
        # Set when a run settles; a step that had begun a try was cut off, not skipped.
        return "abandoned" if step.tries else "skipped"
    if step.status == StepStatus.WAITING and not live:
        return "skipped"
    return str(step.status)


# A run's status as every door's screen shows it. The saga's own word stays in the API and
# the database; on a screen, a run the watchdog flagged is "stalled" (its status is still
# "running": the handle is held until an operator resets it), and a run set aside by a reset
# or a decommission is "abandoned" ("orphaned" is the word of a tenant's condition, which a
# page shows beside it and means something else: a handle without its run).
RUN_STATUS_WORDS: dict[str, str] = {RunStatus.ORPHANED: "abandoned"}


def run_status_word(run: Run) -> str:
    """What an operator reads for a run: ``stalled`` for a live run the watchdog flagged,
    ``abandoned`` for one a reset or a decommission set aside, else the run's status."""
    if run.status in (RunStatus.RUNNING, RunStatus.CANCELLING) and run.stalled_at is not None:
        return "stalled"
    return RUN_STATUS_WORDS.get(run.status, str(run.status))


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


def _released_kinds(run: Run, allocations: list[Allocation]) -> set[str]:
    return {
        a.kind
        for a in allocations
        if a.released_at is not None and (a.allocated_by_id == run.id or a.released_by_id == run.id)
    }


def released_kinds(run: Run) -> set[str]:
    """The kinds of allocation ``run`` made or released that are released now (one query)."""
    return _released_kinds(run, list(Allocation.objects.filter(tenant_id=run.tenant_id)))


def step_views(
    run: Run,
    steps: list[StepExecution],
    allocations: list[Allocation],
    *,
    now: datetime | None = None,
) -> list[StepView]:
    released = _released_kinds(run, allocations)
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
