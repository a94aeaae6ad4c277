"""The allocation ledger: recording and releasing what providers made.

Every function here expects to run with the tenant's row locked when it writes, except
``release_allocation``, which calls the provider outside any transaction and takes the lock
only to record the result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone

from audit.services import record_event
from tenants.models import Tenant

from . import conditions
from .models import KINDS, Allocation, Run
from .providers import ProviderError, get_provider

log = logging.getLogger(__name__)

# Reverse order of the saga, for releasing: invite first, storage last.
_KIND_ORDER = Case(
    *[When(kind=kind, then=Value(i)) for i, kind in enumerate(KINDS)],
    default=Value(len(KINDS)),
    output_field=IntegerField(),
)


def held_allocations(tenant_id: UUID):
    return Allocation.objects.filter(tenant_id=tenant_id, released_at__isnull=True)


def release_order(tenant_id: UUID):
    """Held allocations, newest first: the reverse of the order they were made in."""
    return (
        held_allocations(tenant_id)
        .annotate(kind_order=_KIND_ORDER)
        .order_by("-allocated_at", "-kind_order", "-id")
    )


def record_allocation(
    *, tenant: Tenant, kind: str, external_id: str, run: Run, actor: str
) -> tuple[Allocation, bool]:
    """Write what a provider answered. Returns the held row and whether it is new.

    Called with the tenant locked. Providers are idempotent per tenant, so a second answer for
    a kind already held names the same thing and adds nothing.
    """
    held = held_allocations(tenant.id).filter(kind=kind).first()
    if held is not None:
        if held.external_id != external_id:
            # A provider that is not idempotent made a second thing. Keep the first; the
            # caller releases this one (see ``release_duplicate``).
            raise DuplicateAllocation(held, external_id)
        return held, False
    allocation = Allocation.objects.create(
        tenant=tenant, kind=kind, external_id=external_id, allocated_by=run
    )
    record_event(
        type="tenant.resource.allocated",
        tenant_id=tenant.id,
        run_id=run.id,
        actor=actor,
        data={"kind": kind, "external_id": external_id},
    )
    return allocation, True


class DuplicateAllocation(Exception):
    def __init__(self, held: Allocation, external_id: str) -> None:
        super().__init__(f"{held.kind} already held as {held.external_id}, got {external_id}")
        self.held = held
        self.external_id = external_id


def release_allocation(
    allocation_id: int,
    *,
    run_id: UUID | None,
    actor: str,
    heartbeat: Callable[[], None] | None = None,
) -> bool:
    """Release one allocation, trying again with backoff; True once it is released.

    The provider is called outside any transaction. A release that keeps failing is marked on
    the row (``release_error``) and the row stays held: it is shown, never dropped.
    """
    allocation = Allocation.objects.filter(pk=allocation_id).first()
    if allocation is None or not allocation.held:
        return True
    provider = get_provider(allocation.kind)
    tries = max(1, settings.CONTROLPLANE_RELEASE_MAX_TRIES)
    error = ""
    for attempt in range(1, tries + 1):
        if heartbeat:
            heartbeat()
        try:
            provider.release(allocation.tenant_id, allocation.external_id)
        except ProviderError as exc:
            error = str(exc)
            log.warning("release of %s failed (try %s): %s", allocation, attempt, error)
            if exc.permanent:
                break
            if attempt < tries:
                time.sleep(settings.CONTROLPLANE_RETRY_BACKOFF * 2 ** (attempt - 1) / 4)
            continue
        except Exception as exc:  # noqa: BLE001 - a provider bug must not lose the row
            error = f"{type(exc).__name__}: {exc}"
            log.exception("release of %s crashed", allocation)
            break
        else:
            error = ""
            break
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().filter(pk=allocation.tenant_id).first()
        if error:
            Allocation.objects.filter(pk=allocation.pk, released_at__isnull=True).update(
                release_error=error, release_attempts=allocation.release_attempts + tries
            )
            if tenant is not None:
                # release_failed, unless a rollback or decommission is still at work.
                conditions.refresh_condition(tenant)
            return False
        updated = Allocation.objects.filter(pk=allocation.pk, released_at__isnull=True).update(
            released_at=timezone.now(), released_by_id=run_id, release_error=""
        )
        if updated:
            record_event(
                type="tenant.resource.released",
                tenant_id=allocation.tenant_id,
                run_id=run_id,
                actor=actor,
                data={"kind": allocation.kind, "external_id": allocation.external_id},
            )
            if allocation.release_error and tenant is not None:
                # A release that had failed went through at last: maybe nothing is wrong now.
                conditions.refresh_condition(tenant)
    return True


def release_all(
    tenant_id: UUID,
    *,
    run_id: UUID | None,
    actor: str,
    heartbeat: Callable[[], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Allocation]:
    """Release everything the tenant holds, newest first. Returns the ones that failed.

    Each allocation is tried once per call; the loop reads the ledger again after each, so an
    allocation written meanwhile by a late step is released too.
    """
    failed: list[Allocation] = []
    attempted: set[int] = set()
    while True:
        if should_stop and should_stop():
            break
        nxt = release_order(tenant_id).exclude(pk__in=attempted).first()
        if nxt is None:
            break
        attempted.add(nxt.pk)
        if not release_allocation(nxt.pk, run_id=run_id, actor=actor, heartbeat=heartbeat):
            failed.append(Allocation.objects.get(pk=nxt.pk))
    return failed
