"""Every audit event type, once (as Zulip's ``AuditLogEventType``).

Code names an event type as ``EventType.TENANT_SUSPENDED``, never as a string: a typo is an
``AttributeError`` at import, not a silent new type in the feed. The values are the strings the
contract names; ``StrEnum`` keeps them plain strings in the database, in JSON and in webhooks.

``audit`` imports none of our other apps, so every app (and every door) can import this module.
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    TENANT_CREATED = "tenant.created"

    PROVISIONING_STARTED = "tenant.provisioning.started"
    PROVISIONING_RETRY_REQUESTED = "tenant.provisioning.retry_requested"
    STEP_STARTED = "tenant.provisioning.step_started"
    STEP_COMPLETED = "tenant.provisioning.step_completed"
    STEP_FAILED = "tenant.provisioning.step_failed"

    RESOURCE_ALLOCATED = "tenant.resource.allocated"
    RESOURCE_REUSED = "tenant.resource.reused"
    RESOURCE_RELEASED = "tenant.resource.released"
    # Found by reconciliation (``provisioning/reconcile.py``).
    RESOURCE_LEAKED = "tenant.resource.leaked"
    RESOURCE_MISSING = "tenant.resource.missing"

    COMPENSATION_STARTED = "tenant.provisioning.compensation_started"
    COMPENSATION_COMPLETED = "tenant.provisioning.compensation_completed"
    COMPENSATION_FAILED = "tenant.provisioning.compensation_failed"

    PROVISIONING_COMPLETED = "tenant.provisioning.completed"
    PROVISIONING_FAILED = "tenant.provisioning.failed"

    CANCEL_REQUESTED = "tenant.provisioning.cancel_requested"
    PROVISIONING_CANCELLED = "tenant.provisioning.cancelled"

    RESET_STARTED = "tenant.provisioning.reset_started"
    RESET_COMPLETED = "tenant.provisioning.reset_completed"
    RESET_FAILED = "tenant.provisioning.reset_failed"

    # The watchdog.
    STEP_REDISPATCHED = "tenant.provisioning.step_redispatched"
    PROVISIONING_STALLED = "tenant.provisioning.stalled"
    ORPHANED_HANDLE = "tenant.provisioning.orphaned_handle"

    TENANT_SUSPENDED = "tenant.suspended"
    TENANT_RESUMED = "tenant.resumed"
    DECOMMISSION_REQUESTED = "tenant.decommission_requested"
    TENANT_DECOMMISSIONED = "tenant.decommissioned"
    # Four eyes (CONTROLPLANE_DECOMMISSION_APPROVAL): a second admin approves or withdraws.
    DECOMMISSION_APPROVED = "tenant.decommission_approved"
    DECOMMISSION_WITHDRAWN = "tenant.decommission_withdrawn"

    # A plan change (a run of kind plan_change): its start and its three ends, and the ledger's
    # record of each allocation it changes and of each change it reverts.
    PLAN_CHANGE_STARTED = "tenant.plan_change.started"
    PLAN_CHANGE_COMPLETED = "tenant.plan_change.completed"
    PLAN_CHANGE_CANCELLED = "tenant.plan_change.cancelled"
    PLAN_CHANGE_FAILED = "tenant.plan_change.failed"
    RESOURCE_CHANGED = "tenant.resource.changed"
    RESOURCE_CHANGE_REVERTED = "tenant.resource.change_reverted"

    # Pause / unpause of a live run (``tenants.services.pause_run`` / ``unpause_run``).
    RUN_PAUSED = "tenant.run.paused"
    RUN_UNPAUSED = "tenant.run.unpaused"

    # Scheduled operations (``tenants/schedules.py``); a bulk schedule's go to the global chain.
    SCHEDULED = "operation.scheduled"
    SCHEDULE_CANCELLED = "operation.schedule_cancelled"
    SCHEDULE_REFUSED = "operation.schedule_refused"

    # The approval policy (``tenants/approvals.py``): about one tenant, or a bulk selection.
    APPROVAL_REQUESTED = "operation.approval_requested"
    APPROVAL_GRANTED = "operation.approval_granted"  # then the operation runs as its author
    APPROVAL_REFUSED = "operation.approval_refused"  # granted, but the checks then said no
    APPROVAL_WITHDRAWN = "operation.approval_withdrawn"
    APPROVAL_EXPIRED = "operation.approval_expired"

    # About no tenant (the global chain): failed and refused logins, and the checkpoints of the
    # chain heads (``audit/checkpoints.py``), sent to webhooks as well.
    AUTH_LOGIN_FAILED = "auth.login_failed"
    AUTH_LOCKED_OUT = "auth.locked_out"
    AUDIT_CHECKPOINT = "audit.checkpoint"


# Events that concern no tenant (``tenant_id=None``): they share the global chain.
GLOBAL_EVENT_TYPES = frozenset(
    {EventType.AUTH_LOGIN_FAILED, EventType.AUTH_LOCKED_OUT, EventType.AUDIT_CHECKPOINT}
)
APPROVAL_EVENT_TYPES = frozenset(
    {
        EventType.APPROVAL_REQUESTED,
        EventType.APPROVAL_GRANTED,
        EventType.APPROVAL_REFUSED,
        EventType.APPROVAL_WITHDRAWN,
        EventType.APPROVAL_EXPIRED,
    }
)
SCHEDULE_EVENT_TYPES = frozenset(
    {EventType.SCHEDULED, EventType.SCHEDULE_CANCELLED, EventType.SCHEDULE_REFUSED}
)
# An approval or a schedule of a bulk operation concerns no one tenant: those go to the global
# chain too.
TENANTLESS_EVENT_TYPES = GLOBAL_EVENT_TYPES | APPROVAL_EVENT_TYPES | SCHEDULE_EVENT_TYPES
EVENT_TYPES = frozenset(EventType)
