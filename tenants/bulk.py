"""One operation over many tenants: the one bulk service every door calls.

Tenants are chosen by ids or by the tenant-list selector's filters, at most ``limit``; each is
handled on its own (its own transaction, row lock and state check) through
``tenants.operations.perform``, so one refusal does not stop the others. A dry run previews
them all in three queries and writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from provisioning.admission import bulk_lane
from provisioning.models import Allocation, Run

from . import services
from .errors import ErrorCode, OperationError
from .models import ApprovalRequest, Tenant, TenantState
from .operations import (
    BULK,
    Operation,
    Preview,
    approval_required,
    get_operation,
    open_approval,
    operation_options,
    perform,
    preview_of,
    success_message,
)
from .selectors import TenantFilters, tenant_list
from .services import Actor

S = TenantState

BULK_DEFAULT_LIMIT = 100
BULK_MAX_LIMIT = 1000


# What an outcome says on a screen (the API and ``--json`` keep the codes).
OUTCOME_WORDS = {
    "accepted": "Accepted",
    "would_accept": "Would be accepted",
    "refused": "Refused",
}
DRY_RUN_WORDS = {**OUTCOME_WORDS, "refused": "Would be refused"}


def question(op: Operation, count: int) -> str:
    """What a bulk confirmation asks, counted: "Suspend 3 tenants?", "Cancel provisioning of
    2 tenants?", then what happens to each (the operation's own confirmation, said of each)."""
    tenants = f"{count} tenant{'' if count == 1 else 's'}"
    ask = f"{op.label} of {tenants}?" if " " in op.label else f"{op.label} {tenants}?"
    _, _, rest = op.confirmation.partition("?")
    rest = rest.strip()
    if not rest:
        return ask
    return f"{ask} For each: {rest[0].lower()}{rest[1:]}"


@dataclass
class BulkOutcome:
    id: uuid.UUID | None
    slug: str
    outcome: str  # accepted, would_accept, refused
    code: str = ""
    message: str = ""
    preview: Preview | None = None

    def word(self, *, dry_run: bool) -> str:
        return (DRY_RUN_WORDS if dry_run else OUTCOME_WORDS).get(self.outcome, self.outcome)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id) if self.id else None,
            "slug": self.slug,
            "outcome": self.outcome,
            "code": self.code,
            "message": self.message,
        }


@dataclass
class BulkResult:
    action: str
    dry_run: bool
    matched: int
    results: list[BulkOutcome] = field(default_factory=list)

    approval: ApprovalRequest | None = None  # under the policy: the request that waits

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    def tally(self) -> str:
        """``3 accepted, 1 refused.`` (what an approved bulk's request records)."""
        parts = [f"{self.count(o)} {OUTCOME_WORDS[o].lower()}" for o in ("accepted", "refused")]
        return f"{', '.join(parts)} of {self.matched} matched."

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "dry_run": self.dry_run,
            "matched": self.matched,
            "results": [r.as_dict() for r in self.results],
        }
        if self.approval is not None:
            answer["approval"] = {
                "id": str(self.approval.id),
                "status": self.approval.status,
                "expires_at": self.approval.expires_at,
            }
        return answer


def _bad(field_name: str, message: str) -> OperationError:
    return OperationError(ErrorCode.VALIDATION_ERROR, message, {field_name: [message]})


def clean_limit(limit: Any) -> int:
    if limit is None:
        return BULK_DEFAULT_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise _bad("limit", "limit must be a whole number.")
    if not 1 <= limit <= BULK_MAX_LIMIT:
        raise _bad("limit", f"limit must be between 1 and {BULK_MAX_LIMIT}.")
    return limit


def clean_ids(ids: Any) -> list[uuid.UUID]:
    if not isinstance(ids, list | tuple) or not ids:
        raise _bad("ids", "ids must be a non-empty list of tenant ids.")
    if len(ids) > BULK_MAX_LIMIT:
        raise _bad("ids", f"At most {BULK_MAX_LIMIT} ids at once.")
    clean: dict[uuid.UUID, None] = {}  # ordered, and a set for the duplicate check
    for raw in ids:
        try:
            value = uuid.UUID(str(raw)) if isinstance(raw, str | uuid.UUID) else None
        except ValueError:
            value = None
        if value is None:
            raise _bad("ids", f"{str(raw)[:60]!r} is not a tenant id.")
        clean.setdefault(value)
    return list(clean)


def clean_filters(filters: Any) -> TenantFilters:
    """The tenant list's own parser (same keys, messages and limits as every list), plus the
    one rule of a bulk: an empty filter would mean every tenant, so it is refused."""
    parsed = TenantFilters.from_mapping(filters)
    if not parsed.active:
        raise _bad("filter", "Give at least one filter (or ids).")
    return parsed


def bulk(
    name: str,
    *,
    actor: Actor,
    ids: Any = None,
    filters: Any = None,
    dry_run: bool = False,
    reason: Any = None,
    limit: Any = None,
    options: Any = None,
    approved: bool = False,
) -> BulkResult:
    """One operation over many tenants: chosen by ``ids`` or by ``filters``, at most ``limit``.

    The caller's permission and the reason are checked once (a refusal there refuses the whole
    request); then each tenant is handled on its own, in its own transaction with its own row
    lock and state check, so one refusal does not stop the others. A dry run reads the tenants,
    their handle runs and their held allocations in three queries and writes nothing.

    Under the approval policy (``bulk`` in ``CONTROLPLANE_APPROVAL_REQUIRED``; not a dry run,
    not ``approved`` already), nothing is done: the selection waits as one ``ApprovalRequest``
    (``result.approval``), run as a whole once a second person approves it.
    """
    op = get_operation(name)
    actor.require(op.permission, op.verb)
    reason = services.clean_reason(reason)
    # The row's own arguments (change_plan's plan), checked once for the whole request.
    given = operation_options(op, options)
    if "plan" in given:
        services.clean_plan(given["plan"])
    limit = clean_limit(limit)
    if not isinstance(dry_run, bool):
        raise _bad("dry_run", "dry_run must be true or false.")
    if (ids is None) == (filters is None):
        raise OperationError(
            ErrorCode.VALIDATION_ERROR,
            "Give either ids or filter, not both and not neither.",
            {"ids": ["Give ids or filter."]},
        )
    missing: list[uuid.UUID] = []
    if ids is not None:
        wanted = clean_ids(ids)
        found = {t.pk: t for t in Tenant.objects.filter(pk__in=wanted)}
        missing = [i for i in wanted if i not in found]
        tenants = [found[i] for i in wanted if i in found]
        matched = len(tenants)
        tenants = tenants[:limit]
    else:
        qs = tenant_list(clean_filters(filters)).order_by("-created_at", "-id")
        matched = qs.count()
        tenants = list(qs[:limit])
    result = BulkResult(action=op.name, dry_run=dry_run, matched=matched)
    if not dry_run and not approved and approval_required(BULK):
        selection: dict[str, Any] = {"limit": limit}
        if ids is not None:
            selection["ids"] = [str(i) for i in clean_ids(ids)]
        else:
            selection["filter"] = clean_filters(filters).as_mapping()
        if given:
            selection["options"] = given  # change_plan's plan, for when it runs
        with transaction.atomic():
            result.approval = open_approval(
                op, actor=actor, tenant=None, reason=reason, selection=selection
            )
        return result
    if dry_run:
        result.results = _bulk_previews(op, tenants, given)
    else:
        for tenant in tenants:
            result.results.append(_bulk_one(op, tenant, actor, reason, given, approved))
    result.results.extend(
        BulkOutcome(
            id=i, slug="", outcome="refused", code=ErrorCode.NOT_FOUND, message="No such tenant."
        )
        for i in missing
    )
    return result


def _bulk_one(
    op: Operation,
    tenant: Tenant,
    actor: Actor,
    reason: str,
    options: dict[str, Any],
    approved: bool,
) -> BulkOutcome:
    try:
        # Bulk work yields to work started for one tenant (provisioning.admission).
        with bulk_lane():
            done = perform(
                op.name,
                tenant_id=tenant.pk,
                actor=actor,
                reason=reason,
                options=options,
                approved=approved,
            )
    except OperationError as exc:
        return BulkOutcome(tenant.pk, tenant.slug, "refused", exc.code, exc.message)
    return BulkOutcome(tenant.pk, tenant.slug, "accepted", "", success_message(op, done))


def _bulk_previews(
    op: Operation, tenants: Iterable[Tenant], options: dict[str, Any]
) -> list[BulkOutcome]:
    tenants = list(tenants)
    handles = {t.workflow_id for t in tenants if t.workflow_id}
    runs = {r.pk: r for r in Run.objects.filter(pk__in=handles)} if handles else {}
    held: dict[uuid.UUID, list[Allocation]] = {t.pk: [] for t in tenants}
    if tenants:
        for a in Allocation.objects.filter(
            tenant_id__in=list(held), released_at__isnull=True
        ).order_by("-allocated_at", "-id"):
            held[a.tenant_id].append(a)
    outcomes = []
    for t in tenants:
        run = runs.get(t.workflow_id) if t.workflow_id else None
        try:
            p = preview_of(op, t, run, held[t.pk], options)
        except OperationError as exc:
            outcomes.append(BulkOutcome(t.pk, t.slug, "refused", exc.code, exc.message))
        else:
            outcomes.append(BulkOutcome(t.pk, t.slug, "would_accept", "", p.summary, p))
    return outcomes
