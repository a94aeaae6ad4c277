"""The approval policy at the service layer: any row of the table by name, bulk, a second
person, expiry, the checks of the moment of approval; and the table as the one source of
permissions and roles. (Each door has its own tests: console, API, admin, commands.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from audit.models import Event
from tenants import approvals, bulk, grants, services
from tenants.errors import OperationError
from tenants.models import ApprovalRequest, Tenant, TenantState
from tenants.operations import OPERATIONS, perform, preview
from tenants.roles import ROLES
from tenants.selectors import action_states
from tenants.services import Actor

from .. import factories as f
from ..conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def policy(fast_saga):
    fast_saga.CONTROLPLANE_APPROVAL_REQUIRED = ("suspend", "bulk")
    fast_saga.CONTROLPLANE_APPROVAL_TTL = 3600
    return fast_saga


@pytest.fixture
def second_operator(roles):
    return make_user("olga", "operator")


def types(tenant: Tenant) -> list[str]:
    return list(
        Event.objects.filter(tenant_id=tenant.id).order_by("id").values_list("type", flat=True)
    )


def test_an_operation_under_the_policy_waits_for_a_second_person(policy, operator, second_operator):
    tenant = f.active_tenant()
    asked = perform("suspend", tenant_id=tenant.id, actor=Actor.for_user(operator), reason="bill")
    request = asked.approval
    assert f.reload(tenant).state == "active"  # nothing done yet
    assert f.reload(tenant).waiting_operations == ["suspend"]
    assert request.operation == "suspend" and request.status == "waiting"
    assert request.expires_at - request.requested_at == timedelta(seconds=3600)
    [event] = Event.objects.filter(type="operation.approval_requested", tenant_id=tenant.id)
    assert event.actor == f"user:{operator.username}"
    assert event.data == {
        "approval": str(request.id),
        "operation": "suspend",
        "requested_by": operator.username,
        "reason": "bill",
    }

    # The author is refused, with the reason in words; nothing changes.
    with pytest.raises(OperationError) as own:
        approvals.approve(request.id, actor=Actor.for_user(operator))
    assert own.value.code == "approver_is_author" and own.value.status == 403
    assert own.value.message == (
        f"{operator.username} asked for this suspend; a different person with the "
        "tenants.suspend_tenant permission must approve it."
    )
    # So is a token of the author: four eyes compares people, not credentials.
    with pytest.raises(OperationError):
        approvals.approve(request.id, actor=Actor.for_token("ci", operator))
    # And a viewer (no suspend permission) may neither approve nor withdraw.
    viewer = make_user("vera", "viewer")
    for decision in approvals.DECISIONS:
        with pytest.raises(OperationError) as denied:
            approvals.decide(decision, request.id, actor=Actor.for_user(viewer))
        assert denied.value.code == "permission_denied"
    assert ApprovalRequest.objects.get(pk=request.id).status == "waiting"

    done = approvals.approve(request.id, actor=Actor.for_user(second_operator), reason="ok")
    assert done.status == "approved" and done.decided_by == "olga"
    assert done.outcome == f"{tenant.slug} is suspended."
    tenant = f.reload(tenant)
    assert tenant.state == "suspended" and tenant.awaiting_approval == ""
    # Requested, granted by the second person, then the operation as its author.
    assert types(tenant)[-3:] == [
        "operation.approval_requested",
        "operation.approval_granted",
        "tenant.suspended",
    ]
    suspended = Event.objects.get(tenant_id=tenant.id, type="tenant.suspended")
    assert suspended.actor == f"user:{operator.username}" and suspended.data["reason"] == "bill"
    granted = Event.objects.get(tenant_id=tenant.id, type="operation.approval_granted")
    assert granted.actor == "user:olga" and granted.data["decision_reason"] == "ok"
    # Decided once: a second approval is refused.
    with pytest.raises(OperationError) as twice:
        approvals.approve(request.id, actor=Actor.for_user(second_operator))
    assert twice.value.code == "invalid_state"


def test_operations_not_named_run_at_once(policy, operator):
    tenant = f.suspended_tenant()
    done = perform("resume", tenant_id=tenant.id, actor=Actor.for_user(operator))
    assert getattr(done, "approval", None) is None and f.reload(tenant).state == "active"


def test_the_waiting_rule_is_said_once_for_every_door(policy, operator):
    """Waiting for approval is decided in one place (``Operation.check``): the action states
    every door shows, the preview and the operation itself agree."""
    tenant = f.active_tenant()
    perform("suspend", tenant_id=tenant.id, actor=Actor.for_user(operator))
    tenant = f.reload(tenant)
    state = next(a for a in action_states(tenant, None, operator) if a.name == "suspend")
    assert not state.available and "already waits for a second person's approval" in state.reason
    for attempt in (perform, preview):
        with pytest.raises(OperationError) as refused:
            attempt("suspend", tenant_id=tenant.id, actor=Actor.for_user(operator))
        assert refused.value.message == state.reason


def test_a_request_expires(policy, operator, second_operator):
    tenant = f.active_tenant()
    request = perform("suspend", tenant_id=tenant.id, actor=Actor.for_user(operator)).approval
    assert approvals.expire_approvals() == 0  # not yet
    with time_machine.travel(timezone.now() + timedelta(seconds=3601)):
        assert approvals.expire_approvals() == 1
        assert approvals.expire_approvals() == 0  # once
    request.refresh_from_db()
    assert request.status == "expired" and request.decided_by == ""
    [event] = Event.objects.filter(type="operation.approval_expired", tenant_id=tenant.id)
    assert event.actor == "system" and event.data["approval"] == str(request.id)
    tenant = f.reload(tenant)
    assert tenant.state == "active" and tenant.awaiting_approval == ""
    with pytest.raises(OperationError) as late:
        approvals.approve(request.id, actor=Actor.for_user(second_operator))
    assert late.value.code == "invalid_state"
    # Suspend may be asked again.
    assert perform("suspend", tenant_id=tenant.id, actor=Actor.for_user(operator)).approval


def test_approving_after_its_time_but_before_the_pass_expires_it(policy, operator, second_operator):
    tenant = f.active_tenant()
    request = perform("suspend", tenant_id=tenant.id, actor=Actor.for_user(operator)).approval
    with time_machine.travel(timezone.now() + timedelta(seconds=3601)):
        done = approvals.approve(request.id, actor=Actor.for_user(second_operator))
    assert done.status == "expired" and f.reload(tenant).state == "active"


def test_approval_runs_with_the_checks_of_that_moment(policy, operator, second_operator):
    """A state that no longer allows it is recorded as refused, not raised."""
    tenant = f.active_tenant()
    request = perform("suspend", tenant_id=tenant.id, actor=Actor.for_user(operator)).approval
    # Meanwhile the shell suspends it directly (trusted, not under the policy's door).
    perform("suspend", tenant_id=tenant.id, actor=f.ACTOR, approved=True)
    done = approvals.approve(request.id, actor=Actor.for_user(second_operator))
    assert done.status == "refused"
    assert "Suspend applies to active tenants only" in done.outcome
    [event] = Event.objects.filter(type="operation.approval_refused", tenant_id=tenant.id)
    assert event.data["error"] == done.outcome
    assert f.reload(tenant).awaiting_approval == ""


def test_approval_runs_with_the_authors_permissions_then(policy, operator, second_operator):
    tenant = f.active_tenant()
    request = perform("suspend", tenant_id=tenant.id, actor=Actor.for_user(operator)).approval
    operator.groups.clear()  # the author lost the role meanwhile
    done = approvals.approve(request.id, actor=Actor.for_user(second_operator))
    assert done.status == "refused" and "permission" in done.outcome
    assert f.reload(tenant).state == "active"


def test_withdraw_by_the_author(policy, operator):
    tenant = f.active_tenant()
    request = perform("suspend", tenant_id=tenant.id, actor=Actor.for_user(operator)).approval
    done = approvals.withdraw(request.id, actor=Actor.for_user(operator), reason="not now")
    assert done.status == "withdrawn"
    assert approvals.decided_message(done) == (
        f"Suspend of {tenant.slug} withdrawn; nothing was done."
    )
    assert types(f.reload(tenant))[-1] == "operation.approval_withdrawn"


def test_bulk_under_the_policy_waits_as_one_request(policy, operator, second_operator):
    one, two, other = f.active_tenant(), f.active_tenant(), f.suspended_tenant()
    result = bulk.bulk(
        "suspend", actor=Actor.for_user(operator), ids=[str(one.id), str(two.id), str(other.id)]
    )
    request = result.approval
    assert request is not None and result.results == [] and result.matched == 3
    assert result.as_dict()["approval"]["status"] == "waiting"
    assert request.tenant_id is None and request.selection["ids"] == [
        str(one.id),
        str(two.id),
        str(other.id),
    ]
    assert {f.reload(t).state for t in (one, two)} == {"active"}
    [asked] = Event.objects.filter(type="operation.approval_requested", tenant_id=None)
    assert asked.data["selection"]["limit"] == 100
    # A dry run is only a preview: it never waits.
    assert (
        bulk.bulk(
            "suspend", actor=Actor.for_user(operator), ids=[str(one.id)], dry_run=True
        ).approval
        is None
    )

    with pytest.raises(OperationError) as own:
        approvals.approve(request.id, actor=Actor.for_user(operator))
    assert own.value.code == "approver_is_author"
    done = approvals.approve(request.id, actor=Actor.for_user(second_operator))
    assert done.status == "approved"
    assert done.outcome == "2 accepted, 1 refused of 3 matched."
    # The approved bulk does not wait again tenant by tenant (suspend is under the policy too).
    assert {f.reload(t).state for t in (one, two)} == {"suspended"}
    assert not ApprovalRequest.objects.filter(tenant__isnull=False).exists()


def test_bulk_by_filter_under_the_policy(policy, operator, second_operator):
    tenant = f.active_tenant(plan="growth")
    request = bulk.bulk(
        "suspend", actor=Actor.for_user(operator), filters={"state": "active", "plan": "growth"}
    ).approval
    assert request.selection["filter"] == {"state": "active", "plan": "growth"}
    approvals.approve(request.id, actor=Actor.for_user(second_operator))
    assert f.reload(tenant).state == "suspended"


def test_a_bulk_expires(policy, operator):
    tenant = f.active_tenant()
    request = bulk.bulk("suspend", actor=Actor.for_user(operator), ids=[str(tenant.id)]).approval
    with time_machine.travel(timezone.now() + timedelta(seconds=3601)):
        assert approvals.expire_approvals() == 1
    assert Event.objects.filter(type="operation.approval_expired", tenant_id=None).count() == 1
    request.refresh_from_db()
    assert request.status == "expired" and f.reload(tenant).state == "active"


def test_each_tenant_of_a_bulk_waits_when_only_the_operation_is_named(fast_saga, operator):
    fast_saga.CONTROLPLANE_APPROVAL_REQUIRED = ("suspend",)
    one, two = f.active_tenant(), f.active_tenant()
    result = bulk.bulk("suspend", actor=Actor.for_user(operator), ids=[str(one.id), str(two.id)])
    assert [r.outcome for r in result.results] == ["accepted", "accepted"]
    assert all("waits for a different person" in r.message for r in result.results)
    assert ApprovalRequest.objects.filter(operation="suspend", status="waiting").count() == 2


def test_every_row_of_the_table_can_be_put_under_the_policy(fast_saga):
    fast_saga.CONTROLPLANE_APPROVAL_REQUIRED = tuple(OPERATIONS) + ("bulk",)
    from tenants.operations import approval_policy

    assert approval_policy() == frozenset([*OPERATIONS, "bulk"])


def test_an_unknown_name_in_the_policy_is_a_configuration_error(fast_saga):
    from tenants.operations import approval_policy

    fast_saga.CONTROLPLANE_APPROVAL_REQUIRED = ("suspend", "supsend")
    with pytest.raises(ImproperlyConfigured, match="supsend"):
        approval_policy()


def test_the_older_four_eyes_switch_means_decommission(fast_saga):
    from tenants.operations import approval_policy

    fast_saga.CONTROLPLANE_DECOMMISSION_APPROVAL = True
    assert approval_policy() == frozenset({"decommission"})


# --- the table is the one source of permissions -----------------------------------------------


def test_permissions_roles_and_the_model_agree_with_the_table(roles):
    """Each operation's permission, the roles' grants and ``Tenant.Meta.permissions`` are read
    off the same rows (``tenants.grants``): they cannot disagree."""
    custom = dict(Tenant._meta.permissions)
    for name, op in [*OPERATIONS.items(), ("create", None)]:
        grant = grants.GRANTS[name]
        if op is not None:
            assert op.permission == grant.permission
        assert grant.codename in custom or grant.codename == "add_tenant"
        for role in ROLES:
            group = Group.objects.get(name=role)
            has = group.permissions.filter(codename=grant.codename).exists()
            assert has == (role in grant.roles), (name, role)
    # Nothing in the model's permissions that no row names.
    assert set(custom) == {g.codename for g in grants.GRANTS.values() if g.description}
    assert set(grants.GRANTS) == {"create", *OPERATIONS}


# --- the state part of every guard is the state machine's ------------------------------------

TRANSITION = {
    "cancel": "request_cancel",
    "reset": "reset",
    "retry": "retry",
    "suspend": "suspend",
    "resume": "resume",
    "decommission": "decommission",
    "change_plan": "start_change",
    "pause": "pause",
    "unpause": "unpause",
}


@pytest.mark.parametrize("state", [s.value for s in TenantState])
def test_every_guard_refuses_the_states_its_transition_does_not_leave(state):
    """For each operation of the table and each state: a state its django-fsm transition
    cannot leave is refused with the one sentence ``wrong_state`` words; any other refusal is
    about something the state machine cannot see."""
    assert set(TRANSITION) == set(OPERATIONS)
    tenant = Tenant(slug="x-guard", state=state)
    for name, op in OPERATIONS.items():
        sources = services.fsm_sources(TRANSITION[name])
        why = op.check(tenant, None)
        if state in sources:
            assert why is None or "applies to" not in why, (name, state, why)
        else:
            assert why == services.wrong_state(
                tenant, transition=TRANSITION[name], operation=name
            ), (name, state)
            assert why.endswith(f"tenants only; this one is {state}.")


def test_beat_runs_the_expiry_pass_on_the_control_queue(policy, operator, settings):
    from controlplane.celery import app
    from tenants.tasks import expire_approvals

    entry = settings.CELERY_BEAT_SCHEDULE["approvals"]
    assert entry["task"] == "tenants.expire_approvals" == expire_approvals.name
    assert entry["schedule"] == settings.CONTROLPLANE_WATCHDOG_INTERVAL
    assert settings.CELERY_TASK_ROUTES["tenants.expire_approvals"]["queue"] == (
        settings.CONTROLPLANE_CONTROL_QUEUE
    )
    app.loader.import_default_modules()
    assert "tenants.expire_approvals" in app.tasks
    tenant = f.active_tenant()
    perform("suspend", tenant_id=tenant.id, actor=Actor.for_user(operator))
    with time_machine.travel(timezone.now() + timedelta(seconds=3601)):
        assert expire_approvals() == 1


def test_a_decommission_that_waited_is_counted_once_in_the_metrics(fast_saga, admin_user):
    from observability.metrics import operations

    fast_saga.CONTROLPLANE_DECOMMISSION_APPROVAL = True
    tenant = f.active_tenant()
    request = perform("decommission", tenant_id=tenant.id, actor=Actor.for_user(admin_user))
    assert operations()[("decommission", "accepted")] == 0
    approvals.approve(request.approval.id, actor=Actor.for_user(make_user("grace", "admin")))
    assert operations()[("decommission", "accepted")] == 1


def test_an_approved_retry_runs_with_the_faults_it_was_asked_with(fast_saga, operator):
    from provisioning.models import Run

    fast_saga.CONTROLPLANE_APPROVAL_REQUIRED = ("retry",)
    fast_saga.CONTROLPLANE_FAULT_INJECTION = True
    tenant = f.failed_tenant()
    asked = perform(
        "retry",
        tenant_id=tenant.id,
        actor=Actor.for_user(operator),
        faults="configure_dns=fail_once",
    )
    assert asked.approval.options == {"faults": {"configure_dns": "fail_once"}}
    assert f.reload(tenant).state == "failed"
    approvals.approve(asked.approval.id, actor=Actor.for_user(make_user("olga", "operator")))
    tenant = f.reload(tenant)
    assert tenant.state == "provisioning"
    assert Run.objects.get(pk=tenant.workflow_id).faults == {"configure_dns": "fail_once"}


@pytest.mark.parametrize("action", list(OPERATIONS))
def test_every_row_waits_then_runs_as_its_author_once_approved(fast_saga, action):
    """One mechanism, no per-operation code: each row of the table, named in the policy, waits
    for a second person and then is performed (its first event, its reason, its author)."""
    from .test_operations_table import FIRST_EVENT, WHERE

    fast_saga.CONTROLPLANE_APPROVAL_REQUIRED = (action,)
    tenant = f.SITUATIONS[WHERE[action]](fast_saga)
    before = f.reload(tenant).state
    asked = perform(
        action,
        tenant_id=tenant.id,
        actor=Actor.shell("alice"),
        reason="why",
        options=f.options_for(action, tenant),  # change_plan's plan, kept by the request
    )
    assert asked.approval.status == "waiting" and f.reload(tenant).state == before
    mark = Event.objects.order_by("-id").values_list("id", flat=True).first()
    with pytest.raises(OperationError):
        approvals.approve(asked.approval.id, actor=Actor.shell("alice"))
    done = approvals.approve(asked.approval.id, actor=Actor.shell("bob"))
    assert done.status == "approved", done.outcome
    [first] = [
        e
        for e in Event.objects.filter(tenant_id=tenant.id, id__gt=mark, type=FIRST_EVENT[action])
        if not e.data.get("awaiting_approval")
    ]
    assert first.actor == "user:alice" and first.data["reason"] == "why"
