"""The table of operator operations, and the one way every door performs, previews or bulks one.

Each row says everything a door needs about an operation: its name, the label of its button,
the permission it needs, the guard that says why not (``tenants.services.why_not_*``), what its
preview releases and records, the service function, where the tenant settles, the sentence a
confirmation asks and the message once it is accepted. The console, the API (routes and
schemas), the admin (buttons and bulk actions) and the ``tenant`` command iterate ``OPERATIONS``
and call ``perform`` / ``preview`` (or ``tenants.bulk.bulk``); none of them spells an
operation's rule again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from audit.events import EventType
from audit.services import record_event
from provisioning.kinds import plan_change_preview
from provisioning.models import PLAN_CHANGE_STEPS, STEPS, Allocation, Run

from . import services
from .actors import Actor
from .errors import ErrorCode, OperationError
from .grants import GRANTS
from .models import ApprovalRequest, Plan, Tenant, TenantState

S = TenantState
Guard = Callable[[Tenant, Run | None], str | None]


@dataclass(frozen=True)
class Operation:
    name: str
    label: str  # the button's label in every door
    guard: Guard  # None when the state allows it, else the reason why not
    service: Callable[..., Tenant]
    end_state: str  # where the tenant settles once the work is done
    releases: bool  # whether it releases what the tenant holds (else it keeps it)
    events: tuple[str, ...]  # the audit event types it leads to, in order
    confirmation: str  # what the confirmation step asks
    done: str  # the message once accepted; {slug} is the tenant's slug
    summary: str  # one line for the API document and the command's help
    takes_faults: bool = False
    # The steps its faults may name (the run it starts), when it takes faults.
    fault_steps: tuple[str, ...] = STEPS
    # Arguments beyond reason/faults, by name (change_plan: ``plan``). Every door reads them
    # from here: a body field of that name, a ``--plan`` option, a field on the confirmation.
    # Each is passed to the service as a keyword, and to ``preview_extra`` for the preview.
    options: tuple[str, ...] = ()
    confirm_by_slug: bool = False  # the operator types the slug to confirm
    # The state the tenant is in while the work runs, when it is not already there and the
    # end state is not certain (a retry provisions again: Active only if the new run succeeds).
    via_state: str = ""
    # False when the work does not settle by itself (a paused run waits for unpause): the
    # command's --wait has nothing to wait for.
    settles: bool = True
    # Older audit event types recorded beside the approval policy's own, by phase
    # (``requested``, ``granted``, ``withdrawn``): decommission's four-eyes names.
    approval_aliases: tuple[tuple[str, str], ...] = ()

    @property
    def permission(self) -> str:
        """The Django permission it needs, from the row's grant (``tenants.grants``)."""
        return GRANTS[self.name].permission

    def alias(self, phase: str) -> str:
        return dict(self.approval_aliases).get(phase, "")

    def check(self, tenant: Tenant, run: Run | None) -> str | None:
        """Whether the tenant allows this operation now: the guard, and the approval policy's
        one rule (a request of this operation already waiting blocks another)."""
        if self.name in tenant.waiting_operations and approval_required(self.name):
            return (
                f"A {self.verb} of this tenant already waits for a second person's approval; "
                "approve or withdraw it on the approvals page."
            )
        return self.guard(tenant, run)

    def done_message(self, slug: str) -> str:
        return self.done.format(slug=slug)

    @property
    def verb(self) -> str:
        return self.label.lower()


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation(
            name="cancel",
            label="Cancel provisioning",
            guard=services.why_not_cancel,
            service=services.cancel_provisioning,
            end_state=S.PENDING,
            releases=True,
            events=(
                EventType.CANCEL_REQUESTED,
                EventType.COMPENSATION_STARTED,
                EventType.RESOURCE_RELEASED,
                EventType.COMPENSATION_COMPLETED,
                EventType.PROVISIONING_CANCELLED,
            ),
            confirmation="Cancel this provisioning? Everything allocated so far is released, "
            "newest first, and the tenant goes back to Pending.",
            done="Cancellation of {slug} requested: what was allocated is being released, then "
            "the tenant goes back to Pending.",
            summary="Cancel provisioning (roll back what was allocated; the tenant becomes "
            "pending)",
        ),
        Operation(
            name="reset",
            label="Reset provisioning",
            guard=services.why_not_reset,
            service=services.reset_provisioning,
            end_state=S.PENDING,
            releases=False,
            events=(
                EventType.RESET_STARTED,
                EventType.RESET_COMPLETED,
            ),
            confirmation="Reset this provisioning? The run is abandoned and its error cleared; "
            "allocations are kept for the next attempt.",
            done="{slug} was reset: the run is abandoned, its error cleared and the tenant is "
            "Pending. Its allocations are kept; retry when ready.",
            summary="Reset a wedged provisioning (keeps allocations; the tenant becomes pending)",
        ),
        Operation(
            name="retry",
            label="Retry provisioning",
            guard=services.why_not_retry,
            service=services.retry_provisioning,
            end_state=S.ACTIVE,
            releases=False,
            events=(
                EventType.PROVISIONING_RETRY_REQUESTED,
                EventType.PROVISIONING_STARTED,
            ),
            confirmation="Retry provisioning? A new run starts (attempt + 1) and reuses what "
            "the tenant still holds.",
            done="Provisioning of {slug} started again.",
            summary="Retry provisioning (a new run, attempt + 1)",
            takes_faults=True,
            via_state=S.PROVISIONING,
        ),
        Operation(
            name="suspend",
            label="Suspend",
            guard=services.why_not_suspend,
            service=services.suspend_tenant,
            end_state=S.SUSPENDED,
            releases=False,
            events=(EventType.TENANT_SUSPENDED,),
            confirmation="Suspend this tenant? It becomes Suspended and keeps everything it "
            "holds; Resume makes it Active again.",
            done="{slug} is suspended.",
            summary="Suspend an active tenant (it keeps what it holds)",
        ),
        Operation(
            name="resume",
            label="Resume",
            guard=services.why_not_resume,
            service=services.resume_tenant,
            end_state=S.ACTIVE,
            releases=False,
            events=(EventType.TENANT_RESUMED,),
            confirmation="Resume this tenant? It becomes Active again, with everything it held.",
            done="{slug} is active again.",
            summary="Resume a suspended tenant (active again)",
        ),
        Operation(
            name="decommission",
            label="Decommission",
            guard=services.why_not_decommission,
            service=services.decommission_tenant,
            end_state=S.DECOMMISSIONED,
            releases=True,
            events=(
                EventType.DECOMMISSION_REQUESTED,
                EventType.RESOURCE_RELEASED,
                EventType.TENANT_DECOMMISSIONED,
            ),
            confirmation="Decommission this tenant? Every resource it holds is released and its "
            "slug becomes free again. This cannot be undone.",
            done="Decommission of {slug} requested: its resources are being released.",
            summary="Decommission (release everything; the slug is free again)",
            confirm_by_slug=True,
            approval_aliases=(
                ("requested", EventType.DECOMMISSION_REQUESTED),
                ("granted", EventType.DECOMMISSION_APPROVED),
                ("withdrawn", EventType.DECOMMISSION_WITHDRAWN),
            ),
        ),
        Operation(
            name="change_plan",
            label="Change plan",
            guard=services.why_not_change_plan,
            service=services.change_plan,
            end_state=S.ACTIVE,
            releases=False,
            events=(
                EventType.PLAN_CHANGE_STARTED,
                EventType.RESOURCE_CHANGED,
                EventType.PLAN_CHANGE_COMPLETED,
            ),
            confirmation="Change this tenant's plan? It is Updating while its database is "
            "resized and its billing plan changed, then Active on the new plan. Cancel, or a "
            "failure, reverts every change: it stays on its current plan.",
            done="The plan change of {slug} started: it is Updating, then Active on the new plan.",
            summary="Change an active tenant's plan (database size, billing plan; cancel reverts)",
            takes_faults=True,
            fault_steps=PLAN_CHANGE_STEPS,
            options=("plan",),
            via_state=S.UPDATING,
        ),
        Operation(
            name="pause",
            label="Pause",
            guard=services.why_not_pause,
            service=services.pause_run,
            end_state=S.PROVISIONING,
            releases=False,
            events=(EventType.RUN_PAUSED,),
            confirmation="Pause this run? The step at work finishes and its answer is recorded; "
            "no next step starts until Unpause. Cancel and reset still work.",
            done="The run of {slug} is paused: no next step starts until it is unpaused.",
            summary="Pause the live run at a step boundary (nothing moves until unpause)",
            settles=False,
        ),
        Operation(
            name="unpause",
            label="Unpause",
            guard=services.why_not_unpause,
            service=services.unpause_run,
            end_state=S.ACTIVE,
            releases=False,
            events=(EventType.RUN_UNPAUSED,),
            confirmation="Unpause this run? Its next step is sent now and the run goes on.",
            done="The run of {slug} goes on: its next step was sent.",
            summary="Unpause a paused run (its next step is sent)",
            via_state=S.PROVISIONING,
        ),
    )
}

# What cancelling a plan change records (it reverts; nothing is released).
CANCEL_CHANGE_EVENTS = (
    EventType.CANCEL_REQUESTED,
    EventType.COMPENSATION_STARTED,
    EventType.RESOURCE_CHANGE_REVERTED,
    EventType.COMPENSATION_COMPLETED,
    EventType.PLAN_CHANGE_CANCELLED,
)


@dataclass(frozen=True)
class Creation:
    """Create, the row of the operation that has no tenant yet: it is not in ``OPERATIONS``
    (no button on a tenant, no bulk), but its permission, label and messages are said once."""

    name: str = "create"
    label: str = "Create tenant"
    done_started: str = "Created tenant {slug} ({id}): provisioning started."
    done_pending: str = "Created tenant {slug} ({id}): it waits in Pending (not started)."
    summary: str = "Create a tenant (with start, its provisioning begins at once)"

    @property
    def permission(self) -> str:
        return GRANTS[self.name].permission

    @property
    def end_state(self) -> str:
        return S.ACTIVE

    def done_message(self, tenant: Tenant) -> str:
        started = tenant.state != S.PENDING
        return (self.done_started if started else self.done_pending).format(
            slug=tenant.slug, id=tenant.id
        )


CREATE = Creation()

# --- the approval policy ------------------------------------------------------------------
#
# ``CONTROLPLANE_APPROVAL_REQUIRED`` names operations of the table (and ``bulk`` for any bulk
# operation) that wait for a second person. It is one mechanism for every row: ``perform``
# opens an ``ApprovalRequest`` instead of calling the service, and ``tenants.approvals`` runs
# it, as its author, once a different person with the same permission approves it.

BULK = "bulk"


def approval_policy() -> frozenset[str]:
    """What waits for a second person: operation names, and ``bulk`` (read at each call)."""
    names = {n.strip() for n in settings.CONTROLPLANE_APPROVAL_REQUIRED if n.strip()}
    if settings.CONTROLPLANE_DECOMMISSION_APPROVAL:
        names.add("decommission")  # the older switch, kept: it means exactly this
    unknown = sorted(names - set(OPERATIONS) - {BULK})
    if unknown:
        raise ImproperlyConfigured(
            f"CONTROLPLANE_APPROVAL_REQUIRED names {', '.join(unknown)}, which "
            f"{'is not an operation' if len(unknown) == 1 else 'are not operations'}; use "
            f"operation names ({', '.join(OPERATIONS)}) or {BULK}."
        )
    return frozenset(names)


def approval_required(name: str) -> bool:
    return name in approval_policy()


def own_request_reason(op: Operation, requested_by: str) -> str:
    """Why the author of a request cannot approve it: said by every door from here."""
    return (
        f"{requested_by} asked for this {op.verb}; a different person with the "
        f"{op.permission} permission must approve it."
    )


def waiting_message(op: Operation, target: str) -> str:
    return (
        f"{op.label} of {target} requested: it waits for a different person allowed to "
        f"{op.verb} to approve it."
    )


def open_approval(
    op: Operation,
    *,
    actor: Actor,
    tenant: Tenant | None,
    reason: str,
    options: dict[str, Any] | None = None,
    selection: dict[str, Any] | None = None,
) -> ApprovalRequest:
    """Record a request that waits for a second person (in the caller's transaction; a
    tenant's request under its row lock, which keeps ``awaiting_approval`` exact)."""
    user = actor.user if isinstance(actor.user, get_user_model()) else None
    now = timezone.now()
    request = ApprovalRequest.objects.create(
        operation=op.name,
        tenant=tenant,
        selection=selection or {},
        reason=reason,
        options=options or {},
        requested_by=actor.person,
        requested_actor=actor.label,
        requested_user=user,
        trusted=actor.user is None,
        requested_at=now,
        expires_at=now + timedelta(seconds=settings.CONTROLPLANE_APPROVAL_TTL),
    )
    tenant_id = tenant.id if tenant is not None else None
    record_event(
        type=EventType.APPROVAL_REQUESTED,
        tenant_id=tenant_id,
        actor=actor.label,
        data=approval_data(request),
    )
    if tenant is not None:
        tenant.awaiting_approval = " ".join([*tenant.waiting_operations, op.name])
        tenant.save(update_fields=["awaiting_approval", "updated_at"])
        if alias := op.alias("requested"):
            data = {"from_state": tenant.state, "awaiting_approval": True}
            if reason:
                data["reason"] = reason
            data["approval"] = str(request.id)
            record_event(type=alias, tenant_id=tenant_id, actor=actor.label, data=data)
    return request


def approval_data(request: ApprovalRequest) -> dict[str, Any]:
    """What every ``operation.approval_*`` event says about its request."""
    data: dict[str, Any] = {
        "approval": str(request.id),
        "operation": request.operation,
        "requested_by": request.requested_by,
    }
    if request.is_bulk:
        data["selection"] = request.selection
    if request.reason:
        data["reason"] = request.reason
    return data


def _ask_approval(op: Operation, *, tenant_id: Any, actor: Actor, inputs: dict[str, Any]) -> Tenant:
    # The checks of this moment, as a preview makes them (reason, options, state); then, under
    # the row lock, the state again and the one-waiting-request rule.
    preview(op.name, tenant_id=tenant_id, actor=actor, **inputs)
    reason = services.clean_reason(inputs.get("reason"))
    options = {k: v for k, v in inputs.items() if k != "reason" and v not in (None, "", {})}
    if "faults" in options:
        options["faults"] = services.clean_faults(options["faults"], op.fault_steps)
    with transaction.atomic():
        tenant = services.load_tenant(tenant_id, lock=True)
        why = op.check(tenant, services.handle_run(tenant))
        if why is not None:
            raise OperationError(ErrorCode.INVALID_STATE, why, {"state": tenant.state})
        request = open_approval(op, actor=actor, tenant=tenant, reason=reason, options=options)
    tenant.approval = request  # type: ignore[attr-defined]  # read by success_message
    return tenant


def get_operation(name: str) -> Operation:
    try:
        return OPERATIONS[name]
    except KeyError:
        raise OperationError(
            ErrorCode.NOT_FOUND,
            f"No operation is called {name!r}; use one of {', '.join(OPERATIONS)}.",
        ) from None


# --- who may ------------------------------------------------------------------------------


def permitted_names(user: Any) -> set[str]:
    """The operations ``user`` may perform, read from its permissions once (None: trusted).

    ``get_all_permissions`` costs one query the first time (``OneQueryModelBackend``) and is
    cached on the user, so a page that asks about six operations asks the database once.
    """
    if user is None:
        return set(OPERATIONS)
    if isinstance(user, AnonymousUser) or not user.is_active:
        return set()
    perms = user.get_all_permissions()
    return {op.name for op in OPERATIONS.values() if op.permission in perms}


def permission_reason(op: Operation) -> str:
    roles = GRANTS[op.name].roles_text
    return f"{op.label} needs the {op.permission} permission ({roles}); you do not have it."


def _require(op: Operation, actor: Actor) -> None:
    actor.require(op.permission, op.verb)


def success_message(op: Operation, tenant: Tenant) -> str:
    """What the doors say once ``op`` was accepted for ``tenant`` (or waits for approval)."""
    if getattr(tenant, "approval", None) is not None:
        return waiting_message(op, tenant.slug)
    return op.done_message(tenant.slug)


def moved_on_note(previewed: set[str], releases: list[Allocation]) -> str:
    """What to add to the result when the operation releases more than its preview listed
    (``previewed``: the ids the confirmation showed): the saga allocated more in between."""
    more = [a for a in releases if str(a.pk) not in previewed]
    if not more:
        return ""
    listed = ", ".join(f"{a.kind} {a.external_id}" for a in more)
    return (
        f" The saga moved on since the preview: {len(more)} more allocation"
        f"{'' if len(more) == 1 else 's'} than it listed will be released too ({listed})."
    )


# --- performing ---------------------------------------------------------------------------


def _no_faults(op: Operation) -> OperationError:
    takers = " and ".join(o.name for o in OPERATIONS.values() if o.takes_faults)
    return OperationError(
        ErrorCode.VALIDATION_ERROR,
        f"{op.label} takes no faults.",
        {"faults": [f"Only {takers} take faults."]},
    )


def operation_options(op: Operation, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The row's own arguments (``op.options``) from what a door gathered; an argument the
    operation does not take, given a value, is refused."""
    given = {k: v for k, v in (options or {}).items() if v not in (None, "")}
    unknown = sorted(set(given) - set(op.options))
    if unknown:
        raise OperationError(
            ErrorCode.VALIDATION_ERROR,
            f"{op.label} takes no {', '.join(unknown)}.",
            {k: [f"{op.label} takes no {k}."] for k in unknown},
        )
    return {name: (options or {}).get(name) for name in op.options}


def given_options(op: Operation, data: Any) -> dict[str, str]:
    """The row's own arguments (``Operation.options``) as a form or a query string gave them."""
    return {name: data.get(name, "") for name in op.options if data.get(name, "")}


def option_fields(op: Operation, tenant: Tenant, given: dict[str, str]) -> list[dict[str, Any]]:
    """A confirmation's field per option (console and admin): change_plan's plan, offering
    every plan but the tenant's own, the first of them chosen until the operator chooses."""
    fields = []
    for name in op.options:
        if name == "plan":
            others = [(value, label) for value, label in Plan.choices if value != tenant.plan]
            value = given.get(name) or (others[0][0] if others else "")
            fields.append(
                {
                    "name": name,
                    "label": f"New plan (now {tenant.plan})",
                    "choices": others,
                    "value": value,
                }
            )
    return fields


def bulk_option_fields(op: Operation, given: dict[str, str]) -> list[dict[str, Any]]:
    """A bulk confirmation's field per option (the admin's bulk action): change_plan's plan,
    offering every plan (each chosen tenant's own is refused for it alone, in the dry run)."""
    return [
        {
            "name": name,
            "label": "New plan",
            "choices": list(Plan.choices),
            "value": given.get(name, ""),
        }
        for name in op.options
        if name == "plan"
    ]


def perform(
    name: str,
    *,
    tenant_id: uuid.UUID | str,
    actor: Actor,
    reason: Any = None,
    faults: Any = None,
    options: Mapping[str, Any] | None = None,
    approved: bool = False,
) -> Tenant:
    """Perform one operation: the caller's permission, then the service (state, reason, work).

    ``options`` carries the row's own arguments (``Operation.options``: change_plan's
    ``plan``), whatever door gathered them. Under the approval policy (and not ``approved``
    already), the operation is not performed but waits as an ``ApprovalRequest`` (which keeps
    its inputs, options included); the returned tenant carries it as ``approval``.
    """
    op = get_operation(name)
    _require(op, actor)
    # The operation's inputs: everything an approval must keep to run it later as asked.
    inputs: dict[str, Any] = {"reason": reason}
    if op.takes_faults:
        inputs["faults"] = faults
    elif faults:
        raise _no_faults(op)
    given = operation_options(op, options)
    if not approved and approval_required(op.name):
        if given:
            inputs["options"] = given
        return _ask_approval(op, tenant_id=tenant_id, actor=actor, inputs=inputs)
    return op.service(tenant_id=tenant_id, actor=actor, **inputs, **given)


# Create has no tenant to guard yet, so it is not a row of the table; the doors reach it here
# (no door imports ``tenants.services``), and it checks ``add_tenant`` itself.
create_tenant = services.create_tenant
# The run an operation would act on (what a door asks before offering an option's field).
handle_run = services.handle_run


# --- previewing ---------------------------------------------------------------------------


@dataclass
class Preview:
    """What an operation would do to a tenant, read without writing anything."""

    action: str
    tenant: Tenant
    from_state: str
    to_state: str
    release: list[Allocation]
    keep: list[Allocation]
    events: list[str]
    awaiting_approval: bool = False
    # What it changes besides the state (change_plan: the plan, the database size, the
    # billing plan, each from -> to); empty for the others.
    changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def operation(self) -> Operation:
        return OPERATIONS[self.action]

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "action": self.action,
            "tenant_id": str(self.tenant.id),
            "from_state": self.from_state,
            "to_state": self.to_state,
            "release": [_allocation(a) for a in self.release],
            "keep": [_allocation(a) for a in self.keep],
            "events": self.events,
            "awaiting_approval": self.awaiting_approval,
            **({"changes": self.changes} if self.changes else {}),
        }

    @property
    def resulting(self) -> str:
        """Where the tenant goes, in words: ``active``, or for a retry ``provisioning (a new
        run), then active once it completes``."""
        via = self.operation.via_state
        if via and via != self.from_state:
            return f"{via} (a new run), then {self.to_state} once it completes"
        return self.to_state

    @property
    def summary(self) -> str:
        text = f"{self.from_state} → {self.resulting}; releases {len(self.release)}, " + (
            f"keeps {len(self.keep)}"
        )
        if self.awaiting_approval:
            text += "; waits for a second person's approval"
        for change in self.changes:
            text += (
                f"; {change['what']} {change.get('from_text', change['from'])} → "
                f"{change.get('to_text', change['to'])}"
            )
        return text + "."


def _allocation(a: Allocation) -> dict[str, Any]:
    return {"kind": a.kind, "external_id": a.external_id}


def preview_of(
    op: Operation,
    tenant: Tenant,
    run: Run | None,
    held: list[Allocation],
    options: Mapping[str, Any] | None = None,
) -> Preview:
    why = op.check(tenant, run)
    if why is not None:
        raise OperationError(ErrorCode.INVALID_STATE, why, {"state": tenant.state})
    if op.name == "change_plan":
        plan = services.clean_plan((options or {}).get("plan"), tenant)
        return Preview(
            action=op.name,
            tenant=tenant,
            from_state=tenant.state,
            to_state=op.end_state,
            release=[],
            keep=list(held),
            events=list(op.events),
            changes=plan_change_preview(tenant.plan, plan),
        )
    if op.name == "cancel" and tenant.state == S.UPDATING:
        # Cancelling a plan change releases nothing: it reverts what the change changed.
        return Preview(
            action=op.name,
            tenant=tenant,
            from_state=tenant.state,
            to_state=S.ACTIVE,
            release=[],
            keep=list(held),
            events=list(CANCEL_CHANGE_EVENTS),
        )
    events = list(op.events)
    awaiting = approval_required(op.name)
    if awaiting:
        # What the approval policy records first: the request, then (once approved) the grant.
        asked = [EventType.APPROVAL_REQUESTED, op.alias("requested")]
        granted = [EventType.APPROVAL_GRANTED, op.alias("granted")]
        events = [e for e in (*asked, *granted) if e] + events
    if op.releases:
        release, keep = list(held), []
    else:
        release, keep = [], list(held)
        events = [e for e in events if e != EventType.RESOURCE_RELEASED]
    if op.releases and not held:
        events = [e for e in events if e != EventType.RESOURCE_RELEASED]
    return Preview(
        action=op.name,
        tenant=tenant,
        from_state=tenant.state,
        to_state=op.end_state,
        release=release,
        keep=keep,
        events=events,
        awaiting_approval=awaiting,
    )


def preview(
    name: str,
    *,
    tenant_id: uuid.UUID | str,
    actor: Actor,
    reason: Any = None,
    faults: Any = None,
    options: Mapping[str, Any] | None = None,
) -> Preview:
    """What ``perform`` would do, refused exactly as it would be; reads only.

    The same checks in the same order as the operation (permission, reason, faults, state),
    without the row lock: the answer is what the operation would do if asked now.
    """
    op = get_operation(name)
    _require(op, actor)
    services.clean_reason(reason)
    if op.takes_faults:
        services.clean_faults(faults, op.fault_steps)
    elif faults:
        raise _no_faults(op)
    given = operation_options(op, options)
    if "plan" in given:
        services.clean_plan(given["plan"])  # a bad plan is a 422 before the state's 409
    tenant = services.load_tenant(tenant_id)
    run = services.handle_run(tenant)
    held = list(
        Allocation.objects.filter(tenant=tenant, released_at__isnull=True).order_by(
            "-allocated_at", "-id"
        )
    )
    return preview_of(op, tenant, run, held, given)
