"""The operations table: reasons (why not), previews that write nothing, recorded reasons, the
bulk service and four eyes, checked at the service layer (the doors have their own tests)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import Event
from provisioning.models import Allocation
from tenants import approvals, bulk, operations
from tenants.errors import OperationError
from tenants.models import Tenant
from tenants.operations import OPERATIONS, perform, preview
from tenants.selectors import tenant_detail
from tenants.services import Actor

from .. import factories as f
from .test_operations import snapshot

pytestmark = pytest.mark.django_db

ACTOR = f.ACTOR
KINDS = ["storage", "identity", "database", "dns", "billing", "invite"]
# The event that opens each operation (the one that carries data.reason).
FIRST_EVENT = {
    "cancel": "tenant.provisioning.cancel_requested",
    "reset": "tenant.provisioning.reset_started",
    "retry": "tenant.provisioning.retry_requested",
    "suspend": "tenant.suspended",
    "resume": "tenant.resumed",
    "decommission": "tenant.decommission_requested",
    "change_plan": "tenant.plan_change.started",
    "pause": "tenant.run.paused",
    "unpause": "tenant.run.unpaused",
}
# A situation in which each operation is allowed.
WHERE = {
    "cancel": "provisioning",
    "reset": "provisioning_stalled",
    "retry": "failed",
    "suspend": "active",
    "resume": "suspended",
    "decommission": "active",
    "change_plan": "active",
    "pause": "provisioning",
    "unpause": "paused",
}


def writes(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]


def test_the_table_has_the_operations_in_the_contract_order():
    assert list(OPERATIONS) == [
        "cancel",
        "reset",
        "retry",
        "suspend",
        "resume",
        "decommission",
        "change_plan",
        "pause",
        "unpause",
    ]
    for op in OPERATIONS.values():
        assert op.label and op.confirmation.endswith(("?", ".")) and "{slug}" in op.done


# --- reasons recorded --------------------------------------------------------------------------


@pytest.mark.parametrize("action", list(OPERATIONS))
def test_the_reason_is_recorded_on_the_first_event(fast_saga, action):
    tenant = f.SITUATIONS[WHERE[action]](fast_saga)
    mark = Event.objects.order_by("-id").values_list("id", flat=True).first()
    perform(
        action,
        tenant_id=tenant.id,
        actor=ACTOR,
        reason="  ticket OPS-42  ",
        options=f.options_for(action, tenant),
    )
    first = Event.objects.filter(tenant_id=tenant.id, id__gt=mark).order_by("id").first()
    assert first.type == FIRST_EVENT[action]
    assert first.data["reason"] == "ticket OPS-42"


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("x" * 501, "at most 500 characters"),
        ("stop\x00now", "Control characters"),
        ("\x1b[31mred", "Control characters"),
        (42, "must be text"),
        (["a"], "must be text"),
    ],
)
def test_a_bad_reason_is_refused_and_changes_nothing(fast_saga, reason: Any, message: str):
    tenant = f.active_tenant()
    before = snapshot(tenant)
    with pytest.raises(OperationError) as refused:
        perform("suspend", tenant_id=tenant.id, actor=ACTOR, reason=reason)
    assert refused.value.code == "validation_error"
    assert message in refused.value.details["reason"][0]
    assert snapshot(tenant) == before


def test_a_reason_of_500_characters_with_line_breaks_is_fine(fast_saga):
    tenant = f.active_tenant()
    reason = ("line\n" * 100)[:500]
    perform("suspend", tenant_id=tenant.id, actor=ACTOR, reason=reason)
    event = Event.objects.get(tenant_id=tenant.id, type="tenant.suspended")
    assert event.data["reason"] == reason.strip()


# --- previews ----------------------------------------------------------------------------------


@pytest.mark.parametrize("situation", list(f.SITUATIONS))
def test_a_preview_writes_nothing_and_refuses_as_the_operation_would(
    fast_saga, situation, django_capture_on_commit_callbacks
):
    tenant = f.SITUATIONS[situation](fast_saga)
    for action in OPERATIONS:
        before = snapshot(tenant)
        with (
            CaptureQueriesContext(connection) as queries,
            django_capture_on_commit_callbacks() as callbacks,
        ):
            try:
                seen = preview(
                    action,
                    tenant_id=tenant.id,
                    actor=ACTOR,
                    reason="why",
                    options=f.options_for(action, tenant),
                )
            except OperationError as exc:
                seen = exc
        assert writes(queries) == [], (situation, action)
        assert callbacks == [], (situation, action)  # no task sent, nothing on commit
        assert snapshot(tenant) == before
        allowed = action in f.ALLOWED_ACTIONS[situation]
        if allowed:
            # Cancelling a plan change reverts it: back to active, not pending.
            cancels_a_change = action == "cancel" and situation == "updating"
            assert seen.to_state == ("active" if cancels_a_change else OPERATIONS[action].end_state)
        else:
            assert isinstance(seen, OperationError)
            # The real operation refuses with the same code and sentence.
            with pytest.raises(OperationError) as real:
                perform(
                    action, tenant_id=tenant.id, actor=ACTOR, options=f.options_for(action, tenant)
                )
            assert (real.value.code, real.value.message) == (seen.code, seen.message)


def test_a_preview_says_what_is_released_and_what_kept(fast_saga):
    tenant = f.active_tenant()
    gone = preview("decommission", tenant_id=tenant.id, actor=ACTOR)
    assert sorted(a.kind for a in gone.release) == sorted(KINDS)
    assert gone.keep == []
    assert gone.events == [
        "tenant.decommission_requested",
        "tenant.resource.released",
        "tenant.decommissioned",
    ]
    kept = preview("suspend", tenant_id=tenant.id, actor=ACTOR).as_dict()
    assert kept["dry_run"] is True
    assert (kept["from_state"], kept["to_state"]) == ("active", "suspended")
    assert kept["release"] == []
    assert sorted(a["kind"] for a in kept["keep"]) == sorted(KINDS)
    assert kept["events"] == ["tenant.suspended"]


def test_a_preview_checks_the_permission_first(fast_saga, viewer):
    tenant = f.active_tenant()
    with pytest.raises(OperationError) as denied:
        preview("suspend", tenant_id=tenant.id, actor=Actor.for_user(viewer))
    assert denied.value.code == "permission_denied"


# --- actions: available, permitted, reason -------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "permitted"),
    [
        ("viewer", set()),
        (
            "operator",
            {"cancel", "reset", "retry", "suspend", "resume", "change_plan", "pause", "unpause"},
        ),
        ("admin_user", set(OPERATIONS)),
    ],
)
def test_actions_say_available_permitted_and_why_not(fast_saga, request, role, permitted):
    user = request.getfixturevalue(role)
    tenant = f.active_tenant()
    user = type(user).objects.get(pk=user.pk)  # no permission cache
    actions = tenant_detail(tenant.id, user=user).actions
    assert [a.name for a in actions] == list(OPERATIONS)
    for a in actions:
        assert a.available == (a.name in f.ALLOWED_ACTIONS["active"])
        assert a.permitted == (a.name in permitted)
        assert (a.reason == "") == (a.available and a.permitted)
        if not a.permitted:
            assert "permission" in a.reason
    resume = next(a for a in actions if a.name == "resume")
    assert resume.reason.startswith("Resume applies to suspended tenants only")


def test_permissions_are_read_once_for_all_six(fast_saga, operator, django_assert_num_queries):
    tenant = f.active_tenant()
    with CaptureQueriesContext(connection) as trusted:
        tenant_detail(tenant.id)
    user = type(operator).objects.get(pk=operator.pk)
    # The same reads, plus the user's permissions (direct and through groups), in one query
    # (tenants.permissions.OneQueryModelBackend).
    with django_assert_num_queries(len(trusted.captured_queries) + 1):
        tenant_detail(tenant.id, user=user)


# --- bulk --------------------------------------------------------------------------------------


def test_bulk_handles_each_tenant_on_its_own(fast_saga):
    a, b = f.active_tenant(), f.active_tenant()
    pending = f.pending_tenant()
    result = bulk.bulk(
        "suspend", actor=ACTOR, ids=[str(a.id), str(pending.id), str(b.id)], reason="sweep"
    )
    outcomes = {r.id: (r.outcome, r.code) for r in result.results}
    assert outcomes == {
        a.id: ("accepted", ""),
        b.id: ("accepted", ""),
        pending.id: ("refused", "invalid_state"),
    }
    assert result.matched == 3 and result.dry_run is False
    assert set(Tenant.objects.filter(pk__in=[a.id, b.id]).values_list("state", flat=True)) == {
        "suspended"
    }
    reasons = Event.objects.filter(type="tenant.suspended").values_list("data__reason", flat=True)
    assert list(reasons) == ["sweep", "sweep"]


def test_a_bulk_dry_run_writes_nothing_in_three_queries(
    fast_saga, django_capture_on_commit_callbacks, django_assert_num_queries
):
    tenants = [f.active_tenant() for _ in range(3)] + [f.failed_tenant()]
    ids = [str(t.id) for t in tenants]
    with (
        django_capture_on_commit_callbacks() as callbacks,
        CaptureQueriesContext(connection) as queries,
        django_assert_num_queries(3),  # tenants, their handle runs, their held allocations
    ):
        result = bulk.bulk("decommission", actor=ACTOR, ids=ids, dry_run=True)
    assert writes(queries) == [] and callbacks == []
    assert [r.outcome for r in result.results] == ["would_accept"] * 4
    assert all(t.decommission_requested_at is None for t in Tenant.objects.all())
    assert result.results[0].preview is not None
    assert len(result.results[0].preview.release) == len(KINDS)


def test_bulk_by_filter_is_bounded_by_limit(fast_saga):
    for _ in range(3):
        f.active_tenant()
    f.pending_tenant()
    result = bulk.bulk("suspend", actor=ACTOR, filters={"state": "active"}, limit=2, dry_run=True)
    assert result.matched == 3
    assert len(result.results) == 2
    assert {r.outcome for r in result.results} == {"would_accept"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "ids"),
        ({"ids": ["x"], "filters": {"state": "active"}}, "ids"),
        ({"ids": []}, "ids"),
        ({"ids": ["not-an-id"]}, "ids"),
        ({"filters": {"state": "sleepy"}}, "state"),  # as every list names it
        ({"filters": {"colour": "red"}}, "filter"),
        ({"filters": {}}, "filter"),
        ({"filters": {"state": "active"}, "limit": 0}, "limit"),
        ({"filters": {"state": "active"}, "limit": 1001}, "limit"),
        ({"filters": {"state": "active"}, "limit": True}, "limit"),
        ({"filters": {"state": "active"}, "reason": "x" * 501}, "reason"),
    ],
)
def test_bulk_refuses_bad_input_whole(fast_saga, kwargs, field):
    tenant = f.active_tenant()
    before = snapshot(tenant)
    with pytest.raises(OperationError) as refused:
        bulk.bulk("suspend", actor=ACTOR, **kwargs)
    assert refused.value.code == "validation_error"
    assert field in refused.value.details
    assert snapshot(tenant) == before


def test_bulk_without_the_permission_is_refused_whole(fast_saga, operator):
    tenant = f.active_tenant()
    with pytest.raises(OperationError) as denied:
        bulk.bulk("decommission", actor=Actor.for_user(operator), ids=[str(tenant.id)])
    assert denied.value.code == "permission_denied"
    assert Tenant.objects.get(pk=tenant.id).decommission_requested_at is None


def test_bulk_reports_unknown_ids(fast_saga):
    missing = "00000000-0000-0000-0000-000000000001"
    result = bulk.bulk("suspend", actor=ACTOR, ids=[missing])
    assert result.matched == 0
    assert [(str(r.id), r.outcome, r.code) for r in result.results] == [
        (missing, "refused", "not_found")
    ]


# --- four eyes ---------------------------------------------------------------------------------


@pytest.fixture
def four_eyes(fast_saga):
    fast_saga.CONTROLPLANE_DECOMMISSION_APPROVAL = True
    return fast_saga


@pytest.fixture
def second_admin(roles):
    from ..conftest import make_user

    return make_user("grace", "admin")


def test_a_decommission_waits_for_a_different_admin(
    four_eyes, admin_user, second_admin, django_capture_on_commit_callbacks
):
    """Four eyes is the approval policy's decommission row: the older switch still means it,
    and the older event names are recorded beside the policy's own."""
    tenant = f.active_tenant()
    asker, approver = Actor.for_user(admin_user), Actor.for_user(second_admin)
    with django_capture_on_commit_callbacks() as asked:
        waiting = perform("decommission", tenant_id=tenant.id, actor=asker, reason="churned")
    assert asked == []  # nothing released yet
    request = waiting.approval
    assert request.requested_by == admin_user.username and request.status == "waiting"
    assert waiting.decommission_requested_at is None
    assert operations.success_message(OPERATIONS["decommission"], waiting).endswith(
        "waits for a different person allowed to decommission to approve it."
    )
    [shown] = tenant_detail(tenant.id).approvals
    assert shown.request == request and shown.approvers == [second_admin.username]
    [event] = Event.objects.filter(tenant_id=tenant.id, type="tenant.decommission_requested")
    assert event.data == {
        "from_state": "active",
        "awaiting_approval": True,
        "reason": "churned",
        "approval": str(request.id),
    }

    # Asking again is refused (the one rule, in Operation.check); approving one's own too.
    with pytest.raises(OperationError) as again:
        perform("decommission", tenant_id=tenant.id, actor=approver)
    assert again.value.code == "invalid_state"
    with pytest.raises(OperationError) as own:
        approvals.approve(request.id, actor=asker)
    assert own.value.code == "approver_is_author"

    with django_capture_on_commit_callbacks() as approved:
        done = approvals.approve(request.id, actor=approver, reason="agreed")
    assert done.status == "approved" and done.decided_by == second_admin.username
    assert len(approved) == 1  # the releases go to a worker on commit
    tenant.refresh_from_db()
    assert tenant.decommission_requested_at is not None
    [ok] = Event.objects.filter(tenant_id=tenant.id, type="tenant.decommission_approved")
    assert ok.actor == "user:grace" and ok.data["requested_by"] == admin_user.username
    # The operation itself ran as its author.
    [ran] = [
        e
        for e in Event.objects.filter(
            tenant_id=tenant.id, type="tenant.decommission_requested", actor="user:ada"
        )
        if not e.data.get("awaiting_approval")
    ]
    assert ran.data["reason"] == "churned"


def test_a_waiting_decommission_can_be_withdrawn(four_eyes, admin_user, second_admin, operator):
    tenant = f.active_tenant()
    waiting = perform("decommission", tenant_id=tenant.id, actor=Actor.for_user(admin_user))
    with pytest.raises(OperationError) as denied:
        approvals.withdraw(waiting.approval.id, actor=Actor.for_user(operator))
    assert denied.value.code == "permission_denied"
    approvals.withdraw(waiting.approval.id, actor=Actor.for_user(admin_user))
    tenant.refresh_from_db()
    assert tenant.awaiting_approval == "" and tenant.decommission_requested_at is None
    assert Event.objects.filter(tenant_id=tenant.id, type="tenant.decommission_withdrawn").exists()
    assert Allocation.objects.filter(tenant=tenant, released_at__isnull=True).count() == 6
    with pytest.raises(OperationError) as nothing:
        approvals.approve(waiting.approval.id, actor=Actor.for_user(second_admin))
    assert nothing.value.code == "invalid_state"


def test_with_four_eyes_the_preview_says_it_will_wait(four_eyes):
    tenant = f.active_tenant()
    seen = preview("decommission", tenant_id=tenant.id, actor=ACTOR)
    assert seen.awaiting_approval is True
    assert seen.events[:4] == [
        "operation.approval_requested",
        "tenant.decommission_requested",
        "operation.approval_granted",
        "tenant.decommission_approved",
    ]
