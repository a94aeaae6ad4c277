"""Scheduled operations: any operation, single or bulk, asked for now to run at ``at``.

Every door that takes an operation takes an optional ``at`` and, when given, calls
``schedule_operation`` / ``schedule_bulk`` here instead of ``perform`` / ``bulk``: the request
is checked as far as it can be now (the operation exists, the author may do it, the reason,
faults, the operation's own arguments such as change_plan's plan, ids or filter and ``at`` are
well formed, the tenant exists), stored as a ``Schedule`` and recorded
(``operation.scheduled``).

The beat's schedule pass (``run_due``, the ``tenants.run_schedules`` task) runs each one once
its time has come, **as its author** (the author's permissions read again then, a deactivated
author refused) and with the tenant's state **then**, through the same ``perform`` / ``bulk``
every door uses. A refusal at that moment is recorded (``refused``, with
``operation.schedule_refused``), never raised. The operation's own events carry
``data.schedule`` (``audit.services.annotated``).

At most once, even with two beats: each due schedule is claimed with ``SELECT ... FOR UPDATE
SKIP LOCKED`` in the transaction that performs it and marks it finished, so a second pass skips
the row while the first holds it and finds it finished once the first commits.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.events import EventType
from audit.services import annotated, record_event

from . import bulk as bulk_ops
from . import services
from .actors import Actor
from .errors import ErrorCode, OperationError
from .models import Schedule, ScheduleStatus
from .operations import OPERATIONS, get_operation, operation_options, perform, success_message

log = logging.getLogger(__name__)

# How far ahead an operation may be scheduled: a typo in the year is refused, not kept.
MAX_AHEAD = timedelta(days=366)
# Schedules run per pass at most (the next pass takes the rest).
PASS_BATCH = 200

STATUSES = tuple(ScheduleStatus.values)


def _bad_at(message: str) -> OperationError:
    return OperationError(ErrorCode.VALIDATION_ERROR, message, {"at": [message]})


def parse_at(value: Any, *, now: datetime | None = None) -> datetime:
    """``at`` as an aware UTC datetime: ISO 8601 with an offset, in the future.

    A naive time (no offset) is refused: whose midnight would it be? So is a time already
    past (it would run at once, which the operator did not ask for) and one more than a year
    ahead.
    """
    if isinstance(value, datetime):
        moment: datetime | None = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text.lstrip("+-").replace(".", "", 1).isdigit():
            raise _bad_at("at is not an ISO 8601 date-time; use e.g. 2026-05-17T09:30:00+02:00.")
        try:
            moment = parse_datetime(text.replace("z", "Z").replace(" ", "T", 1))
        except ValueError:
            moment = None
        if moment is None:
            raise _bad_at(
                f"at {text!r} is not an ISO 8601 date-time; use e.g. 2026-05-17T09:30:00+02:00."
            )
    else:
        raise _bad_at("at must be an ISO 8601 date-time with an offset, as text.")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise _bad_at("at needs an offset (e.g. +02:00 or Z): a time without one names no moment.")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise _bad_at("at is out of range.") from None
    now = now or timezone.now()
    if moment <= now:
        raise _bad_at(
            f"at {moment:%Y-%m-%d %H:%M:%S}Z is not in the future (now is "
            f"{now.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z)."
        )
    if moment - now > MAX_AHEAD:
        raise _bad_at("at is more than a year ahead.")
    return moment


def at_from_form(text: str, offset_minutes: Any = None, *, now: datetime | None = None) -> datetime:
    """``at`` from the console's field: ISO 8601 with an offset, or a local time (a browser's
    ``datetime-local`` value) read at the offset the page sent (the browser's, in minutes east
    of UTC). A local time with no offset known is refused like any naive time."""
    text = (text or "").strip()
    moment = parse_datetime(text.replace(" ", "T", 1)) if text else None
    if moment is not None and moment.tzinfo is None and offset_minutes not in (None, ""):
        try:
            minutes = int(str(offset_minutes))
        except ValueError:
            minutes = None
        if minutes is not None and -16 * 60 <= minutes <= 16 * 60:
            moment = moment.replace(tzinfo=timezone.get_fixed_timezone(minutes))
            return parse_at(moment, now=now)
    return parse_at(text, now=now)


def local_text(moment: datetime, offset_minutes: int) -> str:
    """A moment at an operator's offset: ``2026-05-17 11:30 (UTC+02:00)``."""
    local = moment.astimezone(timezone.get_fixed_timezone(offset_minutes))
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{local:%Y-%m-%d %H:%M} (UTC{sign}{hours:02d}:{minutes:02d})"


def _author_fields(actor: Actor) -> dict[str, Any]:
    return {"actor": actor.label, "author": actor.user, "trusted": actor.user is None}


def schedule_json(s: Schedule) -> dict[str, Any]:
    """A schedule as every door shows it (the API's ``schedule`` object)."""
    return {
        "id": str(s.id),
        "operation": s.operation,
        "at": s.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "status": s.status,
        "bulk": s.bulk,
        "tenant_id": str(s.tenant_id) if s.tenant_id else None,
        "tenant_slug": s.tenant.slug if s.tenant_id and s.tenant else None,
        "ids": s.ids,
        "filter": s.filter,
        "limit": s.limit,
        "options": s.options,
        "reason": s.reason,
        "actor": s.actor,
        "outcome": s.outcome,
        "created_at": s.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "finished_at": (
            s.finished_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
            if s.finished_at
            else None
        ),
        "cancelled_by": s.cancelled_by,
    }


def _scheduled_event(s: Schedule, type: str, actor: str, **data: Any) -> None:
    record_event(
        type=type,
        tenant_id=s.tenant_id,
        actor=actor,
        data={
            "schedule": str(s.id),
            "operation": s.operation,
            "at": s.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            **({"bulk": True} if s.bulk else {}),
            **({"options": s.options} if s.options else {}),
            **data,
        },
    )


# --- asking -------------------------------------------------------------------------------


def clean_options(op: Any, options: Any) -> dict[str, Any]:
    """The operation's own arguments (``Operation.options``) as a schedule keeps them: each
    checked now as the operation checks it (change_plan's plan is one of the plans, else a
    422), only those given. Whether the tenant is on that plan already is the tenant's state,
    read when the schedule runs (another schedule may move it in between)."""
    given = operation_options(op, options)
    if "plan" in given:
        given["plan"] = services.clean_plan(given["plan"])
    return {name: value for name, value in given.items() if value not in (None, "")}


def schedule_operation(
    name: str,
    *,
    tenant_id: uuid.UUID | str,
    actor: Actor,
    at: Any,
    reason: Any = None,
    faults: Any = None,
    options: Any = None,
) -> Schedule:
    """Store ``name`` on one tenant to run at ``at`` (checked now as far as it can be)."""
    op = get_operation(name)
    actor.require(op.permission, op.verb)
    reason = services.clean_reason(reason)
    faults_given: dict[str, str] = {}
    if op.takes_faults:
        faults_given = services.clean_faults(faults, op.fault_steps)
    elif faults:
        takers = " and ".join(o.name for o in OPERATIONS.values() if o.takes_faults)
        raise OperationError(
            ErrorCode.VALIDATION_ERROR,
            f"{op.label} takes no faults.",
            {"faults": [f"Only {takers} take faults."]},
        )
    given = clean_options(op, options)
    moment = parse_at(at)
    with transaction.atomic():
        # The tenant's row lock first, as every writer of a tenant takes it before its audit
        # chain: the new row's foreign key would otherwise take a share lock on the tenant at
        # commit, after the chain's, and deadlock with an operation holding the tenant.
        tenant = services.load_tenant(tenant_id, lock=True)
        s = Schedule.objects.create(
            operation=op.name,
            tenant=tenant,
            reason=reason,
            faults=faults_given,
            options=given,
            at=moment,
            **_author_fields(actor),
        )
        _scheduled_event(s, EventType.SCHEDULED, actor.label, **_reason(reason))
    return s


def schedule_bulk(
    name: str,
    *,
    actor: Actor,
    at: Any,
    ids: Any = None,
    filters: Any = None,
    reason: Any = None,
    limit: Any = None,
    options: Any = None,
) -> Schedule:
    """Store a bulk operation to run at ``at``: the tenants are chosen then, not now; its own
    arguments (change_plan's plan) are checked now and kept."""
    op = get_operation(name)
    actor.require(op.permission, op.verb)
    reason = services.clean_reason(reason)
    given = clean_options(op, options)
    clean_limit = bulk_ops.clean_limit(limit)
    if (ids is None) == (filters is None):
        raise OperationError(
            ErrorCode.VALIDATION_ERROR,
            "Give either ids or filter, not both and not neither.",
            {"ids": ["Give ids or filter."]},
        )
    clean_ids = [str(i) for i in bulk_ops.clean_ids(ids)] if ids is not None else []
    clean_filter: dict[str, Any] = {}
    if filters is not None:
        # Refuses a bad filter now; kept as the filter parser reads it back.
        clean_filter = bulk_ops.clean_filters(filters).as_mapping()
    moment = parse_at(at)
    with transaction.atomic():
        s = Schedule.objects.create(
            operation=op.name,
            bulk=True,
            ids=clean_ids,
            filter=clean_filter,
            limit=clean_limit,
            reason=reason,
            options=given,
            at=moment,
            **_author_fields(actor),
        )
        _scheduled_event(s, EventType.SCHEDULED, actor.label, **_reason(reason))
    return s


def _reason(reason: str) -> dict[str, str]:
    return {"reason": reason} if reason else {}


def cancel_schedule(schedule_id: uuid.UUID | str, *, actor: Actor, reason: Any = None) -> Schedule:
    """Cancel a schedule that has not run: its author, or anyone allowed its operation.

    Under the schedule's row lock, which the pass running it holds until it has finished: a
    cancel racing the run waits, then finds it ``done`` (or ``refused``) and is refused.
    """
    reason = services.clean_reason(reason)
    with transaction.atomic():
        s = _load(schedule_id, lock=True)
        op = get_operation(s.operation)
        actor.require(op.permission, f"cancel a scheduled {op.verb}")
        if s.status != ScheduleStatus.SCHEDULED:
            raise OperationError(
                ErrorCode.INVALID_STATE,
                f"This schedule is {s.status}; only one that has not run can be cancelled.",
                {"status": s.status},
            )
        if s.tenant_id is not None:
            services.load_tenant(s.tenant_id, lock=True)  # before its audit chain, as above
        s.status = ScheduleStatus.CANCELLED
        s.cancelled_by = actor.label
        s.finished_at = timezone.now()
        s.save(update_fields=["status", "cancelled_by", "finished_at"])
        _scheduled_event(s, EventType.SCHEDULE_CANCELLED, actor.label, **_reason(reason))
    return s


def _load(schedule_id: uuid.UUID | str, *, lock: bool = False) -> Schedule:
    try:
        sid = uuid.UUID(str(schedule_id))
    except ValueError:
        raise OperationError(
            ErrorCode.NOT_FOUND, f"No schedule has the id {schedule_id!r}."
        ) from None
    rows = Schedule.objects.select_related("tenant")
    if lock:
        rows = rows.select_for_update(of=("self",))
    s = rows.filter(pk=sid).first()
    if s is None:
        raise OperationError(ErrorCode.NOT_FOUND, f"No schedule has the id {schedule_id}.")
    return s


def get_schedule(schedule_id: uuid.UUID | str) -> Schedule:
    return _load(schedule_id)


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleFilters:
    status: str = ""
    operation: str = ""
    tenant: str = ""  # an id or a slug

    @classmethod
    def parse(
        cls, *, status: Any = None, operation: Any = None, tenant: Any = None
    ) -> ScheduleFilters:
        errors: dict[str, list[str]] = {}
        status = (status or "").strip() if isinstance(status, str) else ""
        operation = (operation or "").strip() if isinstance(operation, str) else ""
        tenant = (tenant or "").strip() if isinstance(tenant, str) else ""
        if status and status not in STATUSES:
            errors["status"] = [f"Choose one of {', '.join(STATUSES)}."]
        if operation:
            try:
                get_operation(operation)
            except OperationError as exc:
                errors["operation"] = [exc.message]
        if errors:
            raise OperationError(ErrorCode.VALIDATION_ERROR, "Some filters are not valid.", errors)
        return cls(status=status, operation=operation, tenant=tenant)


def schedule_list(filters: ScheduleFilters | None = None) -> QuerySet[Schedule]:
    """Schedules, soonest first; the one read behind the API, the console and the command."""
    filters = filters or ScheduleFilters()
    qs = Schedule.objects.select_related("tenant").order_by("at", "id")
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.operation:
        qs = qs.filter(operation=filters.operation)
    if filters.tenant:
        try:
            qs = qs.filter(tenant_id=uuid.UUID(filters.tenant))
        except ValueError:
            qs = qs.filter(tenant__slug=filters.tenant)
    return qs


# --- running ------------------------------------------------------------------------------


def _as_author(s: Schedule) -> Actor:
    """The author as they are now: their permissions read afresh (a new user object)."""
    if s.trusted:
        return Actor(label=s.actor)
    user = get_user_model().objects.filter(pk=s.author_id).first() if s.author_id else None
    if user is None or not user.is_active:
        raise OperationError(
            ErrorCode.PERMISSION_DENIED,
            f"The author of this schedule ({s.actor}) no longer exists or is deactivated.",
        )
    return Actor(label=s.actor, user=user)


def run_due(now: datetime | None = None, *, batch: int = PASS_BATCH) -> list[uuid.UUID]:
    """Run every schedule whose time has come (at most ``batch``); the ids it ran.

    Each in its own transaction: claim it (``FOR UPDATE SKIP LOCKED``: a second pass skips
    it), perform it as its author, mark it done or refused, commit. Work the operation sends
    to workers leaves on that commit, as from any door.
    """
    done: list[uuid.UUID] = []
    for _ in range(batch):
        moment = now or timezone.now()
        with transaction.atomic():
            s = (
                Schedule.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(status=ScheduleStatus.SCHEDULED, at__lte=moment)
                .order_by("at", "id")
                .first()
            )
            if s is None:
                break
            _run_one(s)
            done.append(s.id)
    return done


def _run_one(s: Schedule) -> None:
    """Perform one claimed schedule (its row locked) and record how it ended."""
    status, outcome = ScheduleStatus.DONE, {}
    try:
        # A savepoint: whatever the operation wrote is undone on a refusal, the claim is not.
        with transaction.atomic(), annotated(schedule=str(s.id)):
            actor = _as_author(s)
            if s.bulk:
                result = bulk_ops.bulk(
                    s.operation,
                    actor=actor,
                    ids=s.ids or None,
                    filters=s.filter if not s.ids else None,
                    reason=s.reason,
                    limit=s.limit,
                    options=s.options or None,
                )
                outcome = {
                    "code": "accepted",
                    "message": (
                        f"accepted for {result.count('accepted')}, refused for "
                        f"{result.count('refused')} of {result.matched} matched"
                    ),
                    "results": [r.as_dict() for r in result.results],
                }
            else:
                kwargs: dict[str, Any] = {"reason": s.reason}
                if s.faults:
                    kwargs["faults"] = s.faults
                if s.options:
                    kwargs["options"] = s.options
                tenant = perform(s.operation, tenant_id=s.tenant_id, actor=actor, **kwargs)
                outcome = {
                    "code": "accepted",
                    "message": success_message(get_operation(s.operation), tenant),
                }
    except OperationError as exc:
        status, outcome = ScheduleStatus.REFUSED, {"code": exc.code, "message": exc.message}
    except Exception as exc:  # noqa: BLE001 - recorded as a refusal, never a failed pass
        log.exception("scheduled %s %s failed", s.operation, s.id)
        status = ScheduleStatus.REFUSED
        outcome = {"code": "error", "message": f"{type(exc).__name__}: {exc}"}
    s.status, s.outcome, s.finished_at = status, outcome, timezone.now()
    s.save(update_fields=["status", "outcome", "finished_at"])
    if status == ScheduleStatus.REFUSED:
        if s.tenant_id is not None:
            # A refusal rolled its savepoint back, and the tenant's lock with it: take it again
            # before the tenant's audit chain, in the order every writer takes them.
            services.load_tenant(s.tenant_id, lock=True)
        _scheduled_event(
            s,
            EventType.SCHEDULE_REFUSED,
            s.actor,
            code=outcome["code"],
            message=outcome["message"],
        )


def operation_text(s: Schedule) -> str:
    """What a schedule does, in words: ``Suspend``, ``Change plan to growth``."""
    op = OPERATIONS.get(s.operation)
    text = op.label if op else s.operation
    options = dict(s.options or {})
    if plan := options.pop("plan", None):
        text += f" to {plan}"
    if options:
        text += " (" + ", ".join(f"{k}={v}" for k, v in options.items()) + ")"
    return text


def tenants_of(s: Schedule) -> str:
    """What a schedule acts on, in words: a slug, or the bulk's ids or filter."""
    if not s.bulk:
        return s.tenant.slug if s.tenant else "?"
    if s.ids:
        return f"{len(s.ids)} tenant{'s' if len(s.ids) != 1 else ''} by id"
    described = ", ".join(f"{k}={v}" for k, v in s.filter.items()) or "every tenant"
    return f"tenants where {described}"
