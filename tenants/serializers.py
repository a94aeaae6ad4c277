"""A tenant and its detail as machines read them: one shape for ``GET /tenants/{id}`` (and every
API answer carrying a tenant) and ``manage.py tenant show|list|create --json``, its keys in the
order of the API's schemas.

The API's response schemas (``api/schemas.py``) document and render these same keys; a test
compares the two doors' keys, so a field added to one shows in the other.
"""

from __future__ import annotations

from typing import Any

from .models import Tenant
from .selectors import TenantDetail

TENANT_FIELDS = (
    "id",
    "slug",
    "name",
    "plan",
    "admin_email",
    "state",
    "workflow_id",
    "last_error",
    "failed_activity",
    "created_at",
    "updated_at",
    "activated_at",
    "decommissioned_at",
    "decommission_requested_at",
    "awaiting_approval",  # the model's text, given as the list ``waiting_operations``
    "condition",
    "needs_attention",
)
RUN_FIELDS = (
    "id",
    "attempt",
    "kind",
    "params",
    "status",
    "current_step",
    "compensating",
    "started_at",
    "finished_at",
    "heartbeat_at",
    "stalled_at",
    "failed_step",
    "error",
    "paused_at",
    "paused_by",
)
STEP_FIELDS = (
    "name",
    "position",
    "status",
    "reused",
    "tries",
    "started_at",
    "finished_at",
    "heartbeat_at",
    "duration_ms",
    "error",
    "waiting_for",
    "queued_seconds",
    "republished",
)
ALLOCATION_FIELDS = ("id", "kind", "external_id", "allocated_at", "release_error")


def _pick(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in fields}


APPROVAL_FIELDS = ("id", "operation", "requested_by", "requested_at", "expires_at", "reason")


def tenant_dict(tenant: Tenant) -> dict[str, Any]:
    """The tenant's fields, as the contract names them (its operations waiting for approval
    as a list)."""
    data = _pick(tenant, TENANT_FIELDS)
    data["awaiting_approval"] = tenant.waiting_operations
    return data


def detail_dict(detail: TenantDetail) -> dict[str, Any]:
    """The tenant with its run (steps in every door's vocabulary), held allocations, what may
    be done next and why."""
    run = None
    if detail.run is not None:
        run = {
            **_pick(detail.run, RUN_FIELDS),
            "seconds_since_heartbeat": detail.seconds_since_heartbeat,
            "steps": [_pick(step, STEP_FIELDS) for step in detail.step_views],
        }
    return {
        **tenant_dict(detail.tenant),
        "run": run,
        "allocations": [_pick(a, ALLOCATION_FIELDS) for a in detail.allocations],
        "available_actions": detail.available_actions,
        "recommended_action": detail.recommendation.action,
        "recommended_reason": detail.recommendation.reason,
        "actions": [a.as_dict() for a in detail.actions],
        "approvals": [
            {**_pick(w.request, APPROVAL_FIELDS), "approvers": w.approvers}
            for w in detail.approvals
        ],
    }
