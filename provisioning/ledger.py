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
from django.db import InterfaceError, OperationalError, close_old_connections, transaction
from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone

from audit.events import EventType
from audit.services import record_event
from tenants.models import lock_tenant

from . import conditions
from .models import KINDS, Allocation, AllocationChange, AllocationIntent
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


def holds(tenant_id: UUID, kind: str) -> bool:
    return held_allocations(tenant_id).filter(kind=kind).exists()


def release_order(tenant_id: UUID):
    """Held allocations, newest first: the reverse of the order they were made in."""
    return (
        held_allocations(tenant_id)
        .annotate(kind_order=_KIND_ORDER)
        .order_by("-allocated_at", "-kind_order", "-id")
    )


def open_intent(*, tenant_id: UUID, kind: str, run_id: UUID | None) -> None:
    """Write, before a provider is called, that the tenant is about to hold one ``kind``.

    Called with the tenant locked, in the step's claim. One statement: an intent still open
    from an earlier try (which may have made something) is kept as it is.
    """
    AllocationIntent.objects.bulk_create(
        [AllocationIntent(tenant_id=tenant_id, kind=kind, run_id=run_id)], ignore_conflicts=True
    )


def open_intents(tenant_id: UUID):
    return AllocationIntent.objects.filter(tenant_id=tenant_id, resolved_at__isnull=True)


def outstanding(tenant_id: UUID, failed: list[Allocation | AllocationIntent]) -> bool:
    """Whether anything is still held or intended beyond what already failed to release."""
    failed_allocations = {a.pk for a in failed if isinstance(a, Allocation)}
    failed_intents = {a.pk for a in failed if isinstance(a, AllocationIntent)}
    return (
        held_allocations(tenant_id).exclude(pk__in=failed_allocations).exists()
        or open_intents(tenant_id).exclude(pk__in=failed_intents).exists()
    )


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
        except (OperationalError, InterfaceError) as exc:
            # The database connection died under the provider (a restart, a failover,
            # pg_terminate_backend): transient. Drop the dead connection and try again.
            error = f"{type(exc).__name__}: {exc}"
            log.warning("release of %s lost its database connection (try %s)", allocation, attempt)
            close_old_connections()
            continue
        except Exception as exc:  # noqa: BLE001 - a provider bug must not lose the row
            error = f"{type(exc).__name__}: {exc}"
            log.exception("release of %s crashed", allocation)
            break
        else:
            error = ""
            break
    with transaction.atomic():
        tenant = lock_tenant(allocation.tenant_id, must_exist=False)
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
                type=EventType.RESOURCE_RELEASED,
                tenant_id=allocation.tenant_id,
                run_id=run_id,
                actor=actor,
                data={"kind": allocation.kind, "external_id": allocation.external_id},
            )
            if allocation.release_error and tenant is not None:
                # A release that had failed went through at last: maybe nothing is wrong now.
                conditions.refresh_condition(tenant)
    return True


def release_intent(
    intent_id: int,
    *,
    run_id: UUID | None,
    actor: str,
    heartbeat: Callable[[], None] | None = None,
) -> bool:
    """Release what the provider finds for an open intent (maybe nothing); True when done.

    The intent's worker died between the provider call and the ledger, or has not answered
    yet. What the provider finds for the tenant is released unless the ledger already holds
    it (then the answer did arrive, and the allocation is released on its own).
    """
    intent = AllocationIntent.objects.filter(pk=intent_id, resolved_at__isnull=True).first()
    if intent is None:
        return True
    if heartbeat:
        heartbeat()
    provider = get_provider(intent.kind)
    external_id, error, released = "", "", False
    try:
        external_id = provider.lookup(intent.tenant_id) or ""
        recorded = bool(external_id) and (
            held_allocations(intent.tenant_id)
            .filter(kind=intent.kind, external_id=external_id)
            .exists()
        )
        if external_id and not recorded:
            provider.release(intent.tenant_id, external_id)
            released = True
    except ProviderError as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a provider bug must not lose the intent
        error = f"{type(exc).__name__}: {exc}"
        log.exception("release of %s crashed", intent)
    with transaction.atomic():
        lock_tenant(intent.tenant_id, must_exist=False)
        still_open = AllocationIntent.objects.filter(pk=intent.pk, resolved_at__isnull=True)
        if error:
            still_open.update(release_error=error)
            return False
        outcome = (
            AllocationIntent.Outcome.RELEASED if released else AllocationIntent.Outcome.NOTHING
        )
        if (
            still_open.update(
                resolved_at=timezone.now(),
                outcome=outcome,
                external_id=external_id,
                release_error="",
            )
            and released
        ):
            record_event(
                type=EventType.RESOURCE_RELEASED,
                tenant_id=intent.tenant_id,
                run_id=run_id,
                actor=actor,
                data={"kind": intent.kind, "external_id": external_id, "intent": True},
            )
    return True


def release_all(
    tenant_id: UUID,
    *,
    run_id: UUID | None,
    actor: str,
    heartbeat: Callable[[], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Allocation | AllocationIntent]:
    """Release everything the tenant holds, newest first, then every open intent. Returns
    what failed.

    Each allocation is tried once per call; the loop reads the ledger again after each, so an
    allocation written meanwhile by a late step is released too.
    """
    failed: list[Allocation | AllocationIntent] = []
    attempted: set[int] = set()
    while True:
        if should_stop and should_stop():
            return failed
        nxt = release_order(tenant_id).exclude(pk__in=attempted).first()
        if nxt is None:
            break
        attempted.add(nxt.pk)
        if not release_allocation(nxt.pk, run_id=run_id, actor=actor, heartbeat=heartbeat):
            failed.append(Allocation.objects.get(pk=nxt.pk))
    for intent_id in list(open_intents(tenant_id).values_list("pk", flat=True)):
        if should_stop and should_stop():
            break
        if not release_intent(intent_id, run_id=run_id, actor=actor, heartbeat=heartbeat):
            failed.append(AllocationIntent.objects.get(pk=intent_id))
    return failed


# --- changes to held allocations (provisioning.kinds: ``Change``) ---------------------------


def unreverted_changes(run_id: UUID):
    """The run's changes not yet reverted (intents included), newest first."""
    return (
        AllocationChange.objects.filter(run_id=run_id)
        .exclude(status=AllocationChange.Status.REVERTED)
        .order_by("-created_at", "-id")
    )


def revert_change(
    change_id: int,
    *,
    run_id: UUID | None,
    actor: str,
    heartbeat: Callable[[], None] | None = None,
) -> bool:
    """Put back what a change replaced (provider called outside any transaction, tries with
    backoff); True once reverted. A revert that keeps failing stays on the row
    (``revert_error``), the change unreverted: it is shown, never dropped."""
    change = AllocationChange.objects.select_related("allocation").filter(pk=change_id).first()
    if change is None or change.status == AllocationChange.Status.REVERTED:
        return True
    provider = get_provider(change.kind)
    tries = max(1, settings.CONTROLPLANE_RELEASE_MAX_TRIES)
    error = ""
    for attempt in range(1, tries + 1):
        if heartbeat:
            heartbeat()
        try:
            provider.change(
                change.tenant_id, change.allocation.external_id, change.attribute, change.before
            )
        except ProviderError as exc:
            error = str(exc)
            log.warning("revert of %s failed (try %s): %s", change, attempt, error)
            if exc.permanent:
                break
            if attempt < tries:
                time.sleep(settings.CONTROLPLANE_RETRY_BACKOFF * 2 ** (attempt - 1) / 4)
            continue
        except (OperationalError, InterfaceError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            close_old_connections()
            continue
        except Exception as exc:  # noqa: BLE001 - a provider bug must not lose the row
            error = f"{type(exc).__name__}: {exc}"
            log.exception("revert of %s crashed", change)
            break
        else:
            error = ""
            break
    with transaction.atomic():
        lock_tenant(change.tenant_id, must_exist=False)
        row = AllocationChange.objects.filter(pk=change.pk).exclude(
            status=AllocationChange.Status.REVERTED
        )
        if error:
            row.update(revert_error=error)
            return False
        # Only the status this read saw: a late answer that applied it again meanwhile keeps
        # it unreverted, for the rollback's next round.
        if row.filter(status=change.status).update(
            status=AllocationChange.Status.REVERTED, reverted_at=timezone.now(), revert_error=""
        ):
            record_event(
                type=EventType.RESOURCE_CHANGE_REVERTED,
                tenant_id=change.tenant_id,
                run_id=run_id,
                actor=actor,
                data={
                    "kind": change.kind,
                    "external_id": change.allocation.external_id,
                    "attribute": change.attribute,
                    "from": change.after,
                    "to": change.before,
                },
            )
    return True


def revert_all(
    run_id: UUID,
    *,
    actor: str,
    heartbeat: Callable[[], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[AllocationChange]:
    """Revert every change of the run, newest first; returns what failed (each tried once per
    call; the ledger is read again after each, so a late change is caught too)."""
    failed: list[AllocationChange] = []
    attempted: set[int] = set()
    while True:
        if should_stop and should_stop():
            return failed
        nxt = unreverted_changes(run_id).exclude(pk__in=attempted).first()
        if nxt is None:
            return failed
        attempted.add(nxt.pk)
        if not revert_change(nxt.pk, run_id=run_id, actor=actor, heartbeat=heartbeat):
            failed.append(AllocationChange.objects.select_related("allocation").get(pk=nxt.pk))
