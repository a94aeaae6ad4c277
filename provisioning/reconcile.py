"""Reconciliation: the allocation ledger against what the providers really hold.

``leaked``: a provider holds it and no held allocation names it (an open intent of the same
tenant and kind covers a resource in flight, so that is not a leak). ``missing``: a held
allocation names it and the provider does not have it.

Every candidate is checked a second time after the ledger is read (the provider's inventory is
read first), so work that moves while reconciliation runs is not reported: what a step makes
has an open intent before the call, and what a release removes has left the inventory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from audit.events import EventType
from audit.services import SYSTEM, record_event
from tenants.models import Tenant, lock_tenant

from .models import KINDS, Allocation, AllocationIntent, ResourceFinding
from .providers import ProviderError, get_provider

log = logging.getLogger(__name__)

LEAKED = ResourceFinding.Problem.LEAKED
MISSING = ResourceFinding.Problem.MISSING
_FINDING_EVENTS = {LEAKED: EventType.RESOURCE_LEAKED, MISSING: EventType.RESOURCE_MISSING}


@dataclass(frozen=True)
class Finding:
    problem: str  # leaked | missing
    kind: str
    external_id: str
    tenant_id: UUID | None
    allocation_id: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "problem": self.problem,
            "kind": self.kind,
            "external_id": self.external_id,
            "tenant_id": str(self.tenant_id) if self.tenant_id else None,
            "allocation_id": self.allocation_id,
        }


@dataclass
class FixReport:
    released: list[Finding] = field(default_factory=list)
    marked_missing: list[Finding] = field(default_factory=list)
    skipped: list[tuple[Finding, str]] = field(default_factory=list)


def _held(kind: str) -> dict[str, Allocation]:
    return {
        a.external_id: a
        for a in Allocation.objects.filter(kind=kind, released_at__isnull=True).only(
            "id", "tenant_id", "kind", "external_id"
        )
    }


def _intended(kind: str) -> set[UUID]:
    return set(
        AllocationIntent.objects.filter(kind=kind, resolved_at__isnull=True).values_list(
            "tenant_id", flat=True
        )
    )


def _still_leaked(finding: Finding) -> bool:
    covered = Allocation.objects.filter(
        kind=finding.kind, external_id=finding.external_id, released_at__isnull=True
    ).exists() or (
        finding.tenant_id is not None
        and AllocationIntent.objects.filter(
            kind=finding.kind, tenant_id=finding.tenant_id, resolved_at__isnull=True
        ).exists()
    )
    return not covered and get_provider(finding.kind).exists(finding.external_id)


def _still_missing(finding: Finding) -> bool:
    held = Allocation.objects.filter(pk=finding.allocation_id, released_at__isnull=True).exists()
    return held and not get_provider(finding.kind).exists(finding.external_id)


def find_drift(kinds: tuple[str, ...] = KINDS) -> list[Finding]:
    """Every leaked and missing resource, kind by kind (the saga's order)."""
    findings: list[Finding] = []
    for kind in kinds:
        inventory = list(get_provider(kind).inventory())  # first: see the module's docstring
        held = _held(kind)
        intended = _intended(kind)
        present = {external_id for _, external_id in inventory}
        for tenant_id, external_id in inventory:
            if external_id in held or (tenant_id is not None and tenant_id in intended):
                continue
            candidate = Finding(LEAKED, kind, external_id, tenant_id)
            if _still_leaked(candidate):
                findings.append(candidate)
        for external_id, allocation in held.items():
            if external_id in present:
                continue
            candidate = Finding(MISSING, kind, external_id, allocation.tenant_id, allocation.pk)
            if _still_missing(candidate):
                findings.append(candidate)
    return findings


def _known_tenant(tenant_id: UUID | None) -> bool:
    return tenant_id is not None and Tenant.objects.filter(pk=tenant_id).exists()


def fix(findings: list[Finding], *, actor: str = SYSTEM) -> FixReport:
    """Release leaked resources through their provider; mark missing allocations released
    with an error. Each is checked again under the tenant's row lock first."""
    report = FixReport()
    for finding in findings:
        if finding.problem == LEAKED:
            _fix_leaked(finding, actor, report)
        else:
            _fix_missing(finding, actor, report)
    return report


def _fix_leaked(finding: Finding, actor: str, report: FixReport) -> None:
    if finding.tenant_id is None:
        report.skipped.append((finding, "no tenant can be told from it; remove it by hand"))
        return
    known = _known_tenant(finding.tenant_id)
    with transaction.atomic():
        # The lock every step takes to open an intent or record an allocation: while it is
        # held, nothing can start to claim this resource.
        lock_tenant(finding.tenant_id, must_exist=False)
        if not _still_leaked(finding):
            report.skipped.append((finding, "no longer leaked"))
            return
        try:
            get_provider(finding.kind).release(finding.tenant_id, finding.external_id)
        except ProviderError as exc:
            report.skipped.append((finding, f"release failed: {exc}"))
            return
        if known:
            record_event(
                type=EventType.RESOURCE_RELEASED,
                tenant_id=finding.tenant_id,
                run_id=None,
                actor=actor,
                data={
                    "kind": finding.kind,
                    "external_id": finding.external_id,
                    "reconciled": "leaked",
                },
            )
        _resolve(finding, "released by reconcile --fix")
    report.released.append(finding)


def _fix_missing(finding: Finding, actor: str, report: FixReport) -> None:
    with transaction.atomic():
        lock_tenant(finding.tenant_id, must_exist=False)
        if not _still_missing(finding):
            report.skipped.append((finding, "no longer missing"))
            return
        error = "missing: the provider no longer has it (found by reconcile)"
        Allocation.objects.filter(pk=finding.allocation_id, released_at__isnull=True).update(
            released_at=timezone.now(), release_error=error
        )
        record_event(
            type=EventType.RESOURCE_RELEASED,
            tenant_id=finding.tenant_id,
            run_id=None,
            actor=actor,
            data={
                "kind": finding.kind,
                "external_id": finding.external_id,
                "reconciled": "missing",
                "error": error,
            },
        )
        _resolve(finding, "allocation marked released (missing)")
    report.marked_missing.append(finding)


def _resolve(finding: Finding, resolution: str) -> None:
    ResourceFinding.objects.filter(
        problem=finding.problem,
        kind=finding.kind,
        external_id=finding.external_id,
        resolved_at__isnull=True,
    ).update(resolved_at=timezone.now(), resolution=resolution)


def record_findings(findings: list[Finding]) -> list[Finding]:
    """Keep the findings table in step: a new finding is stored and recorded as an audit event
    once (``tenant.resource.leaked`` / ``missing``); an open one no longer found is resolved.
    Returns the new findings. A leak whose tenant is unknown is stored without an event (an
    audit event belongs to a tenant).
    """
    new: list[Finding] = []
    now = timezone.now()
    seen: set[tuple[str, str, str]] = set()
    for finding in findings:
        key = (finding.problem, finding.kind, finding.external_id)
        seen.add(key)
        with transaction.atomic():
            row, created = ResourceFinding.objects.get_or_create(
                problem=finding.problem,
                kind=finding.kind,
                external_id=finding.external_id,
                resolved_at__isnull=True,
                defaults={"tenant_id": finding.tenant_id, "allocation_id": finding.allocation_id},
            )
            if not created:
                ResourceFinding.objects.filter(pk=row.pk).update(last_seen_at=now)
                continue
            if _known_tenant(finding.tenant_id):
                record_event(
                    type=_FINDING_EVENTS[finding.problem],
                    tenant_id=finding.tenant_id,
                    run_id=None,
                    actor=SYSTEM,
                    data={"kind": finding.kind, "external_id": finding.external_id},
                )
        new.append(finding)
    for row in ResourceFinding.objects.filter(resolved_at__isnull=True):
        if (row.problem, row.kind, row.external_id) not in seen:
            ResourceFinding.objects.filter(pk=row.pk, resolved_at__isnull=True).update(
                resolved_at=now, resolution="no longer found"
            )
    return new


def run_reconciliation() -> dict[str, int]:
    """The periodic task's work: find, record once, resolve what went away."""
    findings = find_drift()
    new = record_findings(findings)
    return {
        "leaked": sum(f.problem == LEAKED for f in findings),
        "missing": sum(f.problem == MISSING for f in findings),
        "new": len(new),
    }


def open_findings(tenant_id: UUID):
    return ResourceFinding.objects.filter(tenant_id=tenant_id, resolved_at__isnull=True)
