"""Every operation from every state: allowed ones do what the contract says, refused ones
change nothing; and each operation writes exactly the contract's events."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import Event
from provisioning.models import Allocation, Run
from tenants.errors import OperationError
from tenants.models import Tenant
from tenants.operations import OPERATIONS, perform
from tenants.selectors import tenant_detail
from tenants.services import Actor

from .. import factories as f
from ..conftest import drive, drive_compensation

pytestmark = pytest.mark.django_db

ACTOR = Actor.shell("tester")

BUILDERS = f.SITUATIONS
ALLOWED = f.ALLOWED_ACTIONS


def snapshot(tenant: Tenant) -> tuple[Any, ...]:
    t = Tenant.objects.get(pk=tenant.pk)
    return (
        t.state,
        t.workflow_id,
        t.last_error,
        t.failed_activity,
        t.updated_at,
        t.decommission_requested_at,
        Event.objects.filter(tenant_id=t.id).count(),
        list(Run.objects.filter(tenant=t).values_list("id", "status")),
        Allocation.objects.filter(tenant=t, released_at__isnull=True).count(),
    )


@pytest.mark.parametrize("situation", list(BUILDERS))
def test_available_actions_match_the_contract(fast_saga, situation):
    tenant = BUILDERS[situation](fast_saga)
    assert set(tenant_detail(tenant.id).available_actions) == ALLOWED[situation]


@pytest.mark.parametrize(
    ("situation", "action"),
    [(s, a) for s in BUILDERS for a in OPERATIONS if a not in ALLOWED[s]],
)
def test_refused_operations_change_nothing(fast_saga, situation, action):
    tenant = BUILDERS[situation](fast_saga)
    before = snapshot(tenant)
    with pytest.raises(OperationError) as refused:
        perform(action, tenant_id=tenant.id, actor=ACTOR, options=f.options_for(action, tenant))
    assert refused.value.code == "invalid_state"
    assert refused.value.status == 409
    assert refused.value.message.endswith(".")
    assert snapshot(tenant) == before


def types_since(tenant: Tenant, last_id: int) -> list[str]:
    return list(
        Event.objects.filter(tenant_id=tenant.id, id__gt=last_id)
        .order_by("id")
        .values_list("type", flat=True)
    )


def last_event_id() -> int:
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


def test_create_with_start_writes_created_and_started(fast_saga):
    tenant = f.new_tenant()
    assert tenant.state == "provisioning"
    assert tenant.workflow_id is not None
    events = list(Event.objects.filter(tenant_id=tenant.id).order_by("id"))
    assert [e.type for e in events] == ["tenant.created", "tenant.provisioning.started"]
    assert events[1].data == {"attempt": 1}
    assert events[1].run_id == tenant.workflow_id
    assert all(e.actor == "user:tester" for e in events)


def test_create_without_start_stays_pending(fast_saga):
    tenant = f.new_tenant(start=False)
    assert (tenant.state, tenant.workflow_id) == ("pending", None)
    assert types_since(tenant, 0) == ["tenant.created"]


def test_retry_from_failed_starts_attempt_two_and_clears_the_error(fast_saga):
    tenant = f.failed_tenant()
    assert tenant.failed_activity == "create_database"
    mark = last_event_id()
    perform("retry", tenant_id=tenant.id, actor=ACTOR)
    tenant = f.reload(tenant)
    assert tenant.state == "provisioning"
    assert (tenant.last_error, tenant.failed_activity) == ("", "")
    assert Run.objects.get(pk=tenant.workflow_id).attempt == 2
    assert types_since(tenant, mark) == [
        "tenant.provisioning.retry_requested",
        "tenant.provisioning.started",
    ]
    drive(tenant.workflow_id)
    assert f.reload(tenant).state == "active"


def test_cancel_writes_request_then_rollback_events(fast_saga):
    tenant = f.provisioning_tenant()
    held = {a.kind for a in Allocation.objects.filter(tenant=tenant)}
    assert held == {"storage"}
    mark = last_event_id()
    perform("cancel", tenant_id=tenant.id, actor=ACTOR)
    assert f.reload(tenant).state == "provisioning"  # until the rollback is done
    assert Run.objects.get(pk=tenant.workflow_id).status == "cancelling"
    drive_compensation(tenant.workflow_id)
    tenant = f.reload(tenant)
    assert tenant.state == "pending"
    assert Run.objects.get(pk=tenant.workflow_id).status == "cancelled"
    assert types_since(tenant, mark) == [
        "tenant.provisioning.cancel_requested",
        "tenant.provisioning.compensation_started",
        "tenant.resource.released",
        "tenant.provisioning.compensation_completed",
        "tenant.provisioning.cancelled",
    ]
    assert not Allocation.objects.filter(tenant=tenant, released_at__isnull=True).exists()


def test_reset_orphans_the_run_keeps_allocations_and_writes_two_events(fast_saga):
    tenant = f.stalled_tenant(fast_saga)
    run_id = tenant.workflow_id
    held_before = set(
        Allocation.objects.filter(tenant=tenant, released_at__isnull=True).values_list(
            "kind", flat=True
        )
    )
    mark = last_event_id()
    perform("reset", tenant_id=tenant.id, actor=ACTOR)
    tenant = f.reload(tenant)
    assert (tenant.state, tenant.workflow_id, tenant.last_error) == ("pending", None, "")
    assert Run.objects.get(pk=run_id).status == "orphaned"
    held_after = set(
        Allocation.objects.filter(tenant=tenant, released_at__isnull=True).values_list(
            "kind", flat=True
        )
    )
    assert held_after == held_before == {"storage", "identity"}
    assert types_since(tenant, mark) == [
        "tenant.provisioning.reset_started",
        "tenant.provisioning.reset_completed",
    ]


@pytest.mark.parametrize(
    ("action", "builder", "event", "state"),
    [
        ("suspend", f.active_tenant, "tenant.suspended", "suspended"),
        ("resume", f.suspended_tenant, "tenant.resumed", "active"),
    ],
)
def test_suspend_and_resume(fast_saga, action, builder, event, state):
    tenant = builder()
    mark = last_event_id()
    perform(action, tenant_id=tenant.id, actor=ACTOR)
    assert f.reload(tenant).state == state
    assert types_since(tenant, mark) == [event]


def test_decommission_releases_everything_then_frees_the_slug(fast_saga):
    tenant = f.active_tenant(slug="reusable")
    mark = last_event_id()
    perform("decommission", tenant_id=tenant.id, actor=ACTOR)
    assert f.reload(tenant).state == "active"  # the releases run in a task
    assert tenant_detail(tenant.id).available_actions == []
    from provisioning import compensation

    compensation.decommission_tenant(tenant.id)
    tenant = f.reload(tenant)
    assert tenant.state == "decommissioned"
    assert tenant.decommissioned_at is not None
    assert types_since(tenant, mark) == ["tenant.decommission_requested"] + [
        "tenant.resource.released"
    ] * 6 + ["tenant.decommissioned"]
    again = f.new_tenant(slug="reusable")
    assert again.id != tenant.id


def test_operations_on_unknown_tenants_are_not_found(fast_saga):
    for action in OPERATIONS:
        options = {"plan": "growth"} if action == "change_plan" else {}
        with pytest.raises(OperationError) as missing:
            perform(
                action,
                tenant_id="00000000-0000-0000-0000-000000000000",
                actor=ACTOR,
                options=options,
            )
        assert missing.value.code == "not_found", action
        with pytest.raises(OperationError) as garbage:
            perform(action, tenant_id="not-a-uuid", actor=ACTOR, options=options)
        assert garbage.value.code == "not_found", action


@pytest.mark.parametrize(
    ("role_fixture", "allowed"),
    [
        ("viewer", set()),
        ("operator", {"suspend"}),
        ("admin_user", {"suspend", "decommission"}),
        ("outsider", set()),
    ],
)
def test_permissions_are_checked_by_perform(fast_saga, request, role_fixture, allowed):
    user = request.getfixturevalue(role_fixture)
    for action in ("suspend", "decommission"):
        tenant = f.active_tenant()
        actor = Actor.for_user(user)
        if action in allowed:
            perform(action, tenant_id=tenant.id, actor=actor)
            last = Event.objects.filter(tenant_id=tenant.id).order_by("-id").first()
            assert last.actor == f"user:{user.username}"
        else:
            before = snapshot(tenant)
            with pytest.raises(OperationError) as denied:
                perform(action, tenant_id=tenant.id, actor=actor)
            assert denied.value.code == "permission_denied"
            assert snapshot(tenant) == before


def test_reset_orphans_a_live_run_the_handle_no_longer_names(fast_saga):
    from provisioning.watchdog import run_watchdog

    tenant = f.provisioning_tenant()
    real_run = tenant.workflow_id
    # The handle was overwritten (manual cleanup gone wrong): it names no run at all.
    Tenant.objects.filter(pk=tenant.pk).update(workflow_id="00000000-0000-4000-8000-000000000000")
    assert run_watchdog().orphaned_handles == [str(tenant.id)]
    perform("reset", tenant_id=tenant.id, actor=ACTOR)
    assert Run.objects.get(pk=real_run).status == "orphaned"
    perform("retry", tenant_id=tenant.id, actor=ACTOR)
    drive(f.reload(tenant).workflow_id)
    assert f.reload(tenant).state == "active"
