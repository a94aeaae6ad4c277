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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser

from provisioning.models import Allocation, Run

from . import services
from .errors import OperationError
from .models import Tenant, TenantState
from .services import Actor

S = TenantState
Guard = Callable[[Tenant, Run | None], str | None]


@dataclass(frozen=True)
class Operation:
    name: str
    label: str  # the button's label in every door
    permission: str  # the Django permission it needs (roles grant it)
    guard: Guard  # None when the state allows it, else the reason why not
    service: Callable[..., Tenant]
    end_state: str  # where the tenant settles once the work is done
    releases: bool  # whether it releases what the tenant holds (else it keeps it)
    events: tuple[str, ...]  # the audit event types it leads to, in order
    confirmation: str  # what the confirmation step asks
    done: str  # the message once accepted; {slug} is the tenant's slug
    summary: str  # one line for the API document and the command's help
    takes_faults: bool = False
    confirm_by_slug: bool = False  # the operator types the slug to confirm
    # The state the tenant is in while the work runs, when it is not already there and the
    # end state is not certain (a retry provisions again: Active only if the new run succeeds).
    via_state: str = ""
    # False when the work does not settle by itself (a paused run waits for unpause): the
    # command's --wait has nothing to wait for.
    settles: bool = True

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
            permission="tenants.cancel_provisioning",
            guard=services.why_not_cancel,
            service=services.cancel_provisioning,
            end_state=S.PENDING,
            releases=True,
            events=(
                "tenant.provisioning.cancel_requested",
                "tenant.provisioning.compensation_started",
                "tenant.resource.released",
                "tenant.provisioning.compensation_completed",
                "tenant.provisioning.cancelled",
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
            permission="tenants.reset_provisioning",
            guard=services.why_not_reset,
            service=services.reset_provisioning,
            end_state=S.PENDING,
            releases=False,
            events=(
                "tenant.provisioning.reset_started",
                "tenant.provisioning.reset_completed",
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
            permission="tenants.retry_provisioning",
            guard=services.why_not_retry,
            service=services.retry_provisioning,
            end_state=S.ACTIVE,
            releases=False,
            events=(
                "tenant.provisioning.retry_requested",
                "tenant.provisioning.started",
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
            permission="tenants.suspend_tenant",
            guard=services.why_not_suspend,
            service=services.suspend_tenant,
            end_state=S.SUSPENDED,
            releases=False,
            events=("tenant.suspended",),
            confirmation="Suspend this tenant? It becomes Suspended and keeps everything it "
            "holds; Resume makes it Active again.",
            done="{slug} is suspended.",
            summary="Suspend an active tenant (it keeps what it holds)",
        ),
        Operation(
            name="resume",
            label="Resume",
            permission="tenants.resume_tenant",
            guard=services.why_not_resume,
            service=services.resume_tenant,
            end_state=S.ACTIVE,
            releases=False,
            events=("tenant.resumed",),
            confirmation="Resume this tenant? It becomes Active again, with everything it held.",
            done="{slug} is active again.",
            summary="Resume a suspended tenant (active again)",
        ),
        Operation(
            name="decommission",
            label="Decommission",
            permission="tenants.decommission_tenant",
            guard=services.why_not_decommission_pending,
            service=services.decommission_tenant,
            end_state=S.DECOMMISSIONED,
            releases=True,
            events=(
                "tenant.decommission_requested",
                "tenant.resource.released",
                "tenant.decommissioned",
            ),
            confirmation="Decommission this tenant? Every resource it holds is released and its "
            "slug becomes free again. This cannot be undone.",
            done="Decommission of {slug} requested: its resources are being released.",
            summary="Decommission (release everything; the slug is free again)",
            confirm_by_slug=True,
        ),
        Operation(
            name="pause",
            label="Pause",
            permission="tenants.pause_run",
            guard=services.why_not_pause,
            service=services.pause_run,
            end_state=S.PROVISIONING,
            releases=False,
            events=("tenant.run.paused",),
            confirmation="Pause this run? The step at work finishes and its answer is recorded; "
            "no next step starts until Unpause. Cancel and reset still work.",
            done="The run of {slug} is paused: no next step starts until it is unpaused.",
            summary="Pause the live run at a step boundary (nothing moves until unpause)",
            settles=False,
        ),
        Operation(
            name="unpause",
            label="Unpause",
            permission="tenants.unpause_run",
            guard=services.why_not_unpause,
            service=services.unpause_run,
            end_state=S.ACTIVE,
            releases=False,
            events=("tenant.run.unpaused",),
            confirmation="Unpause this run? Its next step is sent now and the run goes on.",
            done="The run of {slug} goes on: its next step was sent.",
            summary="Unpause a paused run (its next step is sent)",
            via_state=S.PROVISIONING,
        ),
    )
}

# Four eyes: what the decommission's preview and messages say instead when it must wait.
APPROVAL_EVENTS = ("tenant.decommission_requested", "tenant.decommission_approved")
WAITING_MESSAGE = "Decommission of {slug} requested: it waits for a different admin to approve it."
APPROVED_MESSAGE = "Decommission of {slug} approved: its resources are being released."
WITHDRAWN_MESSAGE = "The decommission of {slug} was withdrawn; nothing was released."


def get_operation(name: str) -> Operation:
    try:
        return OPERATIONS[name]
    except KeyError:
        raise OperationError(
            "not_found", f"No operation is called {name!r}; use one of {', '.join(OPERATIONS)}."
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
    role = "admin" if op.name == "decommission" else "operator or admin"
    return f"{op.label} needs the {op.permission} permission (the {role} role); you do not have it."


def _require(op: Operation, actor: Actor) -> None:
    actor.require(op.permission, op.verb)


def success_message(op: Operation, tenant: Tenant) -> str:
    """What the doors say once ``op`` was accepted for ``tenant``."""
    if (
        op.name == "decommission"
        and tenant.decommission_asked_by
        and not (tenant.decommission_requested_at)
    ):
        return WAITING_MESSAGE.format(slug=tenant.slug)
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


def perform(
    name: str,
    *,
    tenant_id: uuid.UUID | str,
    actor: Actor,
    reason: Any = None,
    faults: Any = None,
) -> Tenant:
    """Perform one operation: the caller's permission, then the service (state, reason, work)."""
    op = get_operation(name)
    _require(op, actor)
    kwargs: dict[str, Any] = {"tenant_id": tenant_id, "actor": actor, "reason": reason}
    if op.takes_faults:
        kwargs["faults"] = faults
    elif faults:
        raise OperationError(
            "validation_error",
            f"{op.label} takes no faults.",
            {"faults": ["Only retry takes faults."]},
        )
    return op.service(**kwargs)


def approve_decommission(*, tenant_id: uuid.UUID | str, actor: Actor, reason: Any = None) -> Tenant:
    """Four eyes: approve a waiting decommission (a different admin than the one who asked)."""
    _require(OPERATIONS["decommission"], actor)
    return services.approve_decommission(tenant_id=tenant_id, actor=actor, reason=reason)


def withdraw_decommission(
    *, tenant_id: uuid.UUID | str, actor: Actor, reason: Any = None
) -> Tenant:
    """Four eyes: withdraw a waiting decommission (the admin who asked, or another)."""
    _require(OPERATIONS["decommission"], actor)
    return services.withdraw_decommission(tenant_id=tenant_id, actor=actor, reason=reason)


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
            text += "; waits for a second admin's approval"
        return text + "."


def _allocation(a: Allocation) -> dict[str, Any]:
    return {"kind": a.kind, "external_id": a.external_id}


def preview_of(op: Operation, tenant: Tenant, run: Run | None, held: list[Allocation]) -> Preview:
    why = op.guard(tenant, run)
    if why is not None:
        raise OperationError("invalid_state", why, {"state": tenant.state})
    events = list(op.events)
    awaiting = False
    if op.name == "decommission" and services.approval_required():
        awaiting = not tenant.decommission_requested_at
        if awaiting:
            events = [*APPROVAL_EVENTS, *op.events[1:]]
    if op.releases:
        release, keep = list(held), []
    else:
        release, keep = [], list(held)
        events = [e for e in events if e != "tenant.resource.released"]
    if op.releases and not held:
        events = [e for e in events if e != "tenant.resource.released"]
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
) -> Preview:
    """What ``perform`` would do, refused exactly as it would be; reads only.

    The same checks in the same order as the operation (permission, reason, faults, state),
    without the row lock: the answer is what the operation would do if asked now.
    """
    op = get_operation(name)
    _require(op, actor)
    services.clean_reason(reason)
    if op.takes_faults:
        services.clean_faults(faults)
    elif faults:
        raise OperationError(
            "validation_error",
            f"{op.label} takes no faults.",
            {"faults": ["Only retry takes faults."]},
        )
    tenant = services.load_tenant(tenant_id)
    run = services.handle_run(tenant)
    held = list(
        Allocation.objects.filter(tenant=tenant, released_at__isnull=True).order_by(
            "-allocated_at", "-id"
        )
    )
    return preview_of(op, tenant, run, held)
