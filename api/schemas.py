"""The shapes the API reads and writes; the OpenAPI document is generated from these.

Bodies check only their shape (types, required and unknown fields): what a valid slug, plan or
e-mail is stays in ``tenants.services``, which names the bad field itself. The enums, patterns
and lengths put in the document with ``json_schema_extra`` are read off the models for clients
(and the fuzzer) to see; pydantic does not enforce them, so there is no second copy of a rule.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from ninja import Schema
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field

from provisioning.display import STEP_STATUSES
from provisioning.models import PLAN_CHANGE_STEPS, STEPS, RunKind, RunStatus
from tenants.models import (
    NEEDS_ATTENTION,
    RESERVED_SLUGS,
    SLUG_PATTERN,
    ApprovalStatus,
    Condition,
    Plan,
    TenantState,
)
from tenants.operations import OPERATIONS
from tenants.vocabulary import Recommended


def _words(value: Any) -> Any:
    # ``Tenant.awaiting_approval`` is stored space-separated; the API shows a list.
    return value.split() if isinstance(value, str) else value


def _storable(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refusing it here keeps a database error (a 500) from
    # being the answer. This is about storage, not about what a tenant field may contain.
    if "\x00" in value:
        raise ValueError("Text may not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (JSON "\ud800") is not text the database can store either.
        raise ValueError("Text must be valid Unicode.") from None
    return value


Text = Annotated[str, AfterValidator(_storable)]
ACTIONS = list(OPERATIONS)
RECOMMENDATIONS = list(Recommended)


class StrictBody(Schema):
    # Unknown fields are refused and nothing is coerced ("yes" is not true, 1 is not "1").
    model_config = ConfigDict(extra="forbid", strict=True)


class TenantCreateIn(StrictBody):
    slug: Text = Field(
        description="3-63 characters: lowercase letters, digits, single hyphens; starts with a "
        "letter, ends with a letter or digit; not one of "
        f"{', '.join(sorted(RESERVED_SLUGS))}; unique among tenants not decommissioned.",
        examples=["acme-corp"],
        json_schema_extra={"pattern": SLUG_PATTERN, "minLength": 3, "maxLength": 63},
    )
    name: Text = Field(
        description="1-200 characters after trimming.",
        examples=["Acme Corp"],
        json_schema_extra={"minLength": 1, "maxLength": 200},
    )
    plan: Text = Field(json_schema_extra={"enum": list(Plan.values)}, examples=["starter"])
    admin_email: Text = Field(
        description="Stored lowercased.",
        examples=["ops@acme.example"],
        json_schema_extra={"format": "email", "maxLength": 254},
    )
    start: bool = Field(
        default=True, description="Start provisioning at once (else the tenant stays pending)."
    )
    faults: dict[Text, Text] | Text | None = Field(
        default=None,
        description="Fault injection (only when CONTROLPLANE_FAULT_INJECTION is on): an object "
        "mapping a step name to fail, fail_once, stall or slow:<seconds>, or the same as "
        "step=fault pairs in a string (the console's syntax): \"create_database=fail, "
        'configure_dns=fail_once".',
        json_schema_extra={"propertyNames": {"enum": list(STEPS)}},
    )


REASON_FIELD = Field(
    default=None,
    description="Why you do it, recorded as data.reason on the operation's first event "
    "(at most 500 characters).",
    json_schema_extra={"maxLength": 500},
)
DRY_RUN_FIELD = Field(
    default=False,
    description="Preview only: answer 200 with what would happen (or the refusal the "
    "operation would give) and change nothing.",
)
AT_FIELD = Field(
    default=None,
    description="Run it later: an ISO 8601 date-time with an offset, in the future "
    '(2026-05-17T09:30:00+02:00). Answers 202 with {"schedule": {...}}; it runs then as you, '
    "with your permissions and the tenant's state at that moment.",
    examples=["2026-05-17T09:30:00+02:00"],
    json_schema_extra={"format": "date-time"},
)


class ActionIn(StrictBody):
    """The body of an operation other than retry: empty, or an object with optional fields."""

    reason: Text | None = REASON_FIELD
    dry_run: bool = DRY_RUN_FIELD
    at: Text | None = AT_FIELD


class ApprovalIn(StrictBody):
    """The body of an approval or a withdrawal: optional reason."""

    reason: Text | None = REASON_FIELD


class RetryIn(ActionIn):
    faults: dict[Text, Text] | Text | None = Field(
        default=None,
        description="Fault injection for the new run (only when CONTROLPLANE_FAULT_INJECTION "
        "is on): an object, or step=fault pairs in a string.",
        json_schema_extra={"propertyNames": {"enum": list(STEPS)}},
    )


class ChangePlanIn(ActionIn):
    """The body of change_plan: the plan to move to, and (fault injection) its steps' faults."""

    plan: Text | None = Field(
        default=None,
        description="The plan to move to (required); not the tenant's own.",
        json_schema_extra={"enum": list(Plan.values)},
    )
    faults: dict[Text, Text] | Text | None = Field(
        default=None,
        description="Fault injection for the plan change's run (only when "
        "CONTROLPLANE_FAULT_INJECTION is on): an object, or step=fault pairs in a string.",
        json_schema_extra={"propertyNames": {"enum": list(PLAN_CHANGE_STEPS)}},
    )


class TenantOut(Schema):
    id: uuid.UUID
    slug: str
    name: str
    plan: str = Field(json_schema_extra={"enum": list(Plan.values)})
    admin_email: str
    state: TenantState
    workflow_id: uuid.UUID | None
    last_error: str
    failed_activity: str
    created_at: datetime
    updated_at: datetime
    activated_at: datetime | None
    decommissioned_at: datetime | None
    decommission_requested_at: datetime | None = Field(
        description="Set while a decommission is releasing the tenant's resources."
    )
    awaiting_approval: Annotated[list[str], BeforeValidator(_words)] = Field(
        description="The operations of this tenant waiting for a second person's approval "
        "(the approval policy; see GET /approvals)."
    )
    condition: Condition = Field(description="What the tenant needs from an operator.")
    needs_attention: bool = Field(
        description="True for " + ", ".join(NEEDS_ATTENTION) + ": an operator must act."
    )


class StepOut(Schema):
    name: str
    position: int
    status: str = Field(
        description="The one step-status vocabulary of every door: a step of a run that is no "
        "longer live is never running or dispatched (abandoned if cut off, compensated if what "
        "it allocated was released).",
        json_schema_extra={"enum": list(STEP_STATUSES)},
    )
    reused: bool
    tries: int
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    duration_ms: int | None
    error: str
    waiting_for: str = Field(
        description="What a queued step waits for before it may start (a provider's "
        'concurrency or rate limit), "" when nothing. It is queued: no try spent.'
    )
    queued_seconds: float | None = Field(
        description="A dispatched step of a live run: seconds its try has waited for a worker "
        "(queue wait never spends a try); null otherwise."
    )
    republished: int = Field(
        description="Times the watchdog published the step's message again for the same try "
        "(its message may have been lost, e.g. by a broker restart)."
    )


RUN_KIND_FIELD = Field(
    description="provision (a tenant's provisioning runs) or plan_change.",
    json_schema_extra={"enum": list(RunKind.values)},
)
RUN_PARAMS_FIELD = Field(description='What the kind needs: a plan change\'s {"from", "to"}.')


class RunOut(Schema):
    id: uuid.UUID
    attempt: int
    kind: str = RUN_KIND_FIELD
    params: dict[str, Any] = RUN_PARAMS_FIELD
    status: RunStatus
    current_step: str
    compensating: bool
    started_at: datetime
    finished_at: datetime | None
    heartbeat_at: datetime | None
    stalled_at: datetime | None
    failed_step: str = Field(description='The step that failed the run, "" when none.')
    error: str = Field(description='The run\'s recorded error, "" when none.')
    paused_at: datetime | None = Field(
        description="When an operator paused the run (null: not paused)."
    )
    paused_by: str = Field(default="", description="Who paused it.")
    seconds_since_heartbeat: float | None = Field(
        description="Since the last heartbeat of the step at work, while the run is live."
    )
    steps: list[StepOut]


class AllocationOut(Schema):
    id: int
    kind: str
    external_id: str
    allocated_at: datetime
    release_error: str


class TenantDetailOut(TenantOut):
    run: RunOut | None = Field(description="The tenant's current run, else its latest one.")
    allocations: list[AllocationOut] = Field(description="Resources the tenant holds now.")
    available_actions: list[str] = Field(
        description="What the state and the recorded error allow, whoever asks.",
        json_schema_extra={"items": {"type": "string", "enum": ACTIONS}},
    )
    recommended_action: str = Field(json_schema_extra={"enum": RECOMMENDATIONS})
    recommended_reason: str
    actions: list[ActionOut] = Field(
        description="Every operation, in order, with whether it is available and permitted to "
        "the caller, and why not."
    )
    approvals: list[WaitingApprovalOut] = Field(
        description="Its operations waiting for a second person's approval, with who may "
        "approve each (POST /approvals/{id}/approve)."
    )


class ActionOut(Schema):
    name: str = Field(json_schema_extra={"enum": ACTIONS})
    label: str
    available: bool = Field(description="What the state allows (as in available_actions).")
    permitted: bool = Field(description="Whether the asking user or token may do it.")
    reason: str = Field(description='Why not, when either is false; "" when both are true.')


class WaitingApprovalOut(Schema):
    id: uuid.UUID
    operation: str
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    reason: str
    approvers: list[str] = Field(
        description="Users with the operation's permission other than the one who asked."
    )


class ApprovalOut(Schema):
    id: uuid.UUID
    operation: str
    bulk: bool = Field(description="A bulk operation: `selection` says which tenants.")
    tenant_id: uuid.UUID | None
    tenant_slug: str | None
    selection: dict[str, Any] = Field(description='Bulk: {"ids"} or {"filter"}, and "limit".')
    reason: str
    options: dict[str, Any] = Field(description="The operation's other inputs (faults...).")
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    status: str = Field(json_schema_extra={"enum": list(ApprovalStatus.values)})
    decided_by: str
    decided_at: datetime | None
    outcome: str = Field(description="What happened once decided (a refusal's reason too).")


class ApprovalList(Schema):
    items: list[ApprovalOut] = Field(description="Waiting requests first, then newest first.")


class BulkApprovalOut(Schema):
    id: uuid.UUID
    status: str
    expires_at: datetime


class AllocationRef(Schema):
    kind: str
    external_id: str


class PreviewOut(Schema):
    dry_run: bool
    action: str = Field(json_schema_extra={"enum": ACTIONS})
    tenant_id: uuid.UUID
    from_state: TenantState
    to_state: TenantState
    release: list[AllocationRef] = Field(description="Allocations it will release.")
    keep: list[AllocationRef] = Field(description="Allocations it keeps.")
    events: list[str] = Field(description="The audit event types it will record.")
    awaiting_approval: bool = Field(
        description="The approval policy: it will wait for a different person's approval."
    )
    changes: list[dict[str, Any]] | None = Field(
        default=None,
        description="change_plan: what changes, each {what, from, to} (the plan, the "
        "database size, the billing plan).",
    )


# A bulk operation's ``filter`` is checked by the tenant list's own parser
# (``TenantFilters.from_mapping``), so an unknown key or a bad value gets the message every list
# gives; this schema only documents it.
BULK_FILTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "state": {"type": "string", "description": "one state or a comma list"},
        "condition": {"type": "string", "description": "one condition or a comma list"},
        "needs_attention": {"type": "boolean"},
        "plan": {"type": "string", "enum": list(Plan.values)},
        "q": {"type": "string", "maxLength": 200},
        "slug": {"type": "string", "maxLength": 63},
    },
}


class BulkIn(StrictBody):
    ids: list[Text] | None = Field(
        default=None,
        description="Tenant ids (give ids or filter).",
        json_schema_extra={"maxItems": 1000},
    )
    filter: dict[str, Any] | None = Field(
        default=None,
        description="Tenants matching these filters (the list's: state, condition, "
        "needs_attention, plan, q, slug).",
        json_schema_extra=BULK_FILTER_SCHEMA,
    )
    dry_run: bool = DRY_RUN_FIELD
    reason: Text | None = REASON_FIELD
    limit: int | None = Field(
        default=None,
        description="At most this many tenants (default 100, at most 1000).",
        json_schema_extra={"minimum": 1, "maximum": 1000},
    )
    at: Text | None = AT_FIELD


class BulkChangePlanIn(BulkIn):
    plan: Text | None = Field(
        default=None,
        description="change_plan: the plan to move every chosen tenant to (required).",
        json_schema_extra={"enum": list(Plan.values)},
    )


class BulkResultOut(Schema):
    id: uuid.UUID | None
    slug: str
    outcome: str = Field(json_schema_extra={"enum": ["accepted", "would_accept", "refused"]})
    code: str
    message: str


class BulkOut(Schema):
    dry_run: bool
    matched: int = Field(description="How many tenants the ids or filter matched.")
    results: list[BulkResultOut]
    approval: BulkApprovalOut | None = Field(
        default=None,
        description="Under the approval policy (bulk): the request that waits; nothing was done.",
    )


class RunAllocationOut(Schema):
    id: int
    kind: str
    external_id: str
    allocated_at: datetime
    released_at: datetime | None
    release_error: str


class RunHistoryOut(Schema):
    id: uuid.UUID
    attempt: int
    kind: str = RUN_KIND_FIELD
    params: dict[str, Any] = RUN_PARAMS_FIELD
    status: RunStatus
    actor: str
    started_at: datetime
    finished_at: datetime | None
    stalled_at: datetime | None
    failed_step: str
    error: str
    steps: list[StepOut]
    allocated: list[RunAllocationOut] = Field(description="What this run allocated.")
    released: list[RunAllocationOut] = Field(description="What this run released.")


class RunList(Schema):
    items: list[RunHistoryOut] = Field(description="Every run of the tenant, newest first.")


class TenantPage(Schema):
    items: list[TenantOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end."
    )


class EventOut(Schema):
    id: int
    type: str
    occurred_at: datetime
    tenant_id: uuid.UUID | None = Field(description="null for auth.* events (no tenant)")
    run_id: uuid.UUID | None
    actor: str = Field(description="user:<username>, token:<token name> or system")
    data: dict[str, Any]


class EventPage(Schema):
    items: list[EventOut]
    next_cursor: str | None


class ErrorDetail(Schema):
    code: str = Field(
        description="invalid_state, slug_taken, validation_error, not_found, "
        "permission_denied, not_authenticated, malformed_body, body_too_large, "
        "unsupported_media_type, ..."
    )
    message: str
    details: Any = Field(
        description="For validation_error: an object of field name to a list of messages."
    )


class ErrorOut(Schema):
    error: ErrorDetail


class ScheduleOut(Schema):
    id: uuid.UUID
    operation: str = Field(json_schema_extra={"enum": ACTIONS})
    at: datetime = Field(description="When it runs (UTC).")
    status: str = Field(json_schema_extra={"enum": ["scheduled", "done", "refused", "cancelled"]})
    bulk: bool
    tenant_id: uuid.UUID | None
    tenant_slug: str | None
    ids: list[str] = Field(description="A bulk's tenant ids ([] when chosen by filter).")
    filter: dict[str, Any] = Field(description="A bulk's filter ({} when chosen by ids).")
    limit: int | None
    options: dict[str, Any] = Field(
        description="The operation's own arguments, passed to it when it runs: change_plan's "
        '{"plan": P} ({} for the others).'
    )
    reason: str
    actor: str = Field(description="Its author, as whom it runs.")
    outcome: dict[str, Any] = Field(
        description="Once run: code (accepted or the refusal's code), message; a bulk's results."
    )
    created_at: datetime
    finished_at: datetime | None
    cancelled_by: str


class ScheduledOut(Schema):
    schedule: ScheduleOut


class SchedulePage(Schema):
    items: list[ScheduleOut]
    next_cursor: str | None
