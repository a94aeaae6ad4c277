"""A stateful property test: operations and step outcomes in any order, against a model of
the contract (states and the operations each allows), on the real database, with the
invariants checked after every rule. Pause / unpause and scheduled operations (asked, cancelled,
run by the schedule pass against the state then) are among the rules; a schedule runs at most
once, a cancelled one never, and a paused run starts no step after the one at work.

Steps run in this process (``saga.execute_step``), compensation and decommission too; the
watchdog runs with the clock moved past the heartbeat timeout, so lost and stalled tries play
out. Deterministic: ``derandomize=True`` and bounded examples and steps.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from audit.models import Event
from audit.services import verify_chains
from provisioning import compensation, saga
from provisioning.models import (
    KINDS,
    PLAN_CHANGE_STEPS,
    STEPS,
    Allocation,
    AllocationChange,
    AllocationIntent,
    Run,
    StepExecution,
    StepStatus,
)
from provisioning.providers import get_provider
from provisioning.watchdog import run_watchdog
from tenants import schedules
from tenants.errors import OperationError
from tenants.models import PLAN_DATABASE_GB, Schedule, Tenant
from tenants.services import (
    cancel_provisioning,
    change_plan,
    create_tenant,
    decommission_tenant,
    pause_run,
    reset_provisioning,
    resume_tenant,
    retry_provisioning,
    suspend_tenant,
    unpause_run,
)

from ..conftest import drive, drive_compensation
from ..factories import ACTOR

pytestmark = pytest.mark.django_db
# What the examples reached, so the test can say it exercised the plan change's outcomes.
SEEN: Counter[str] = Counter()

OPERATIONS = {
    "cancel": cancel_provisioning,
    "reset": reset_provisioning,
    "retry": retry_provisioning,
    "suspend": suspend_tenant,
    "resume": resume_tenant,
    "decommission": decommission_tenant,
    "change_plan": change_plan,
    "pause": pause_run,
    "unpause": unpause_run,
}
# The event that opens each operation (a scheduled one's carries data.schedule).
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
# The schedule rule's operations, change_plan among them: a schedule keeps its plan
# (``Schedule.options``), and the plan then decides whether it is accepted.
SCHEDULABLE = sorted(OPERATIONS)
PLANS = ["starter", "growth", "enterprise"]
FAULT = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(STEPS[1:-1]), st.sampled_from(["fail", "fail_once", "stall"])),
)
CHANGE_FAULT = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(PLAN_CHANGE_STEPS[:-1]), st.sampled_from(["fail", "fail_once", "stall"])
    ),
)


@dataclass
class Model:
    """What the contract says about one tenant."""

    state: str
    error: bool = False
    # Pending after a reset keeps its allocations; every other pending holds none.
    may_hold: bool = False
    faults: dict[str, str] = field(default_factory=dict)
    plan: str = "starter"
    target: str = ""  # the plan a live change moves to
    paused: bool = False

    @property
    def live(self) -> bool:
        """A run pause and unpause apply to: running (provisioning or updating), no error."""
        return self.state in ("provisioning", "updating") and not self.error

    def allows(self, op: str, plan: str = "") -> bool:
        return {
            "cancel": self.state in ("provisioning", "updating"),
            "change_plan": self.state == "active" and plan != self.plan,
            "reset": self.state in ("pending", "provisioning") and (self.error or self.paused),
            "retry": self.state == "failed" or (self.state == "pending" and not self.error),
            "suspend": self.state == "active",
            "resume": self.state == "suspended",
            "decommission": self.state in ("active", "suspended", "pending", "failed"),
            "pause": self.live and not self.paused,
            "unpause": self.live and self.paused,
        }[op]


class Contract(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tenants: list[Tenant] = []
        self.model: dict[Any, Model] = {}
        self.count = 0
        # Scheduled operations of this example: id -> (operation, tenant id, plan).
        self.scheduled: dict[Any, tuple[str, Any, str]] = {}
        self.ran: set[Any] = set()

    def pick(self, index: int) -> Tenant | None:
        return self.tenants[index % len(self.tenants)] if self.tenants else None

    @rule(start=st.booleans(), fault=FAULT)
    def create(self, start: bool, fault: tuple[str, str] | None) -> None:
        if len(self.tenants) >= 6:
            return
        Contract.serial += 1
        faults = dict([fault]) if fault else {}
        tenant = create_tenant(
            actor=ACTOR,
            slug=f"prop-{Contract.serial:05d}",
            name="Property",
            plan="starter",
            admin_email="p@example.test",
            start=start,
            faults=faults or None,
        )
        self.tenants.append(tenant)
        self.model[tenant.id] = Model(
            state="provisioning" if start else "pending", faults=faults if start else {}
        )

    serial = 0

    @initialize()
    def a_change_at_work(self) -> None:
        """Every example starts with one active tenant whose plan change is at work, so a cancel
        mid-change is always within reach of the rules (whatever else they draw)."""
        self.create_active("starter")
        self.operate("change_plan", len(self.tenants) - 1, None, "growth", None)

    @rule(plan=st.sampled_from(["starter", "growth", "enterprise"]))
    def create_active(self, plan: str) -> None:
        """A tenant provisioned to the end at once: what plan changes start from."""
        if len(self.tenants) >= 6:
            return
        Contract.serial += 1
        tenant = create_tenant(
            actor=ACTOR,
            slug=f"prop-{Contract.serial:05d}",
            name="Property",
            plan=plan,
            admin_email="p@example.test",
            start=True,
        )
        drive(tenant.workflow_id)
        self.tenants.append(tenant)
        self.model[tenant.id] = Model(state="active", plan=plan)

    @rule(index=st.integers(0, 50), steps=st.integers(1, 4))
    def advance(self, index: int, steps: int) -> None:
        """Step outcomes: run the next dispatched steps of the tenant's run, in this process."""
        tenant = self.pick(index)
        if tenant is None:
            return
        model = self.model[tenant.id]
        before = model.state
        tenant = Tenant.objects.get(pk=tenant.id)
        for _ in range(steps):
            if tenant.workflow_id is None:
                break
            step = (
                StepExecution.objects.filter(
                    run_id=tenant.workflow_id, status=StepStatus.DISPATCHED
                )
                .order_by("position")
                .first()
            )
            if step is None:
                break
            saga.execute_step(step.pk, step.token)
        run = Run.objects.filter(pk=tenant.workflow_id).first() if tenant.workflow_id else None
        if run is not None and run.compensating:
            drive_compensation(run.id)
        after = Tenant.objects.get(pk=tenant.id).state
        if before == "updating":
            assert after in ("updating", "active")
            if after == "active":
                row = Tenant.objects.get(pk=tenant.id)
                SEEN["change completed" if row.plan == model.target else "change failed"] += 1
                if row.plan == model.target:  # completed
                    assert not set(model.faults.values()) & {"fail", "stall"}, model.faults
                    model.plan, model.error = model.target, False
                else:  # failed, reverted: on the old plan, its error recorded
                    assert row.plan == model.plan
                    assert "fail" in model.faults.values(), model.faults
                    model.error = True
                model.state = "active"
            return
        if before != "provisioning":
            assert after == before, f"a step moved a {before} tenant to {after}"
            return
        assert after in ("provisioning", "active", "failed")
        if after == "active":
            assert not set(model.faults.values()) & {"fail", "stall"}, model.faults
        if after == "failed":
            assert "fail" in model.faults.values(), model.faults
            # A failed tenant carries the step's error (the contract's "fail").
            model.may_hold, model.error = False, True
        model.state = after

    @rule()
    def watchdog(self) -> None:
        """Time passes beyond the heartbeat timeout: lost tries are sent again or stall."""
        later = timezone.now() + timezone.timedelta(
            seconds=django_settings().CONTROLPLANE_HEARTBEAT_TIMEOUT * 2
        )
        with time_machine.travel(later, tick=False):
            report = run_watchdog()
        # The database outlives an example: only this example's tenants are in the model.
        for run_id in report.stalled:
            run = Run.objects.get(pk=run_id)
            if run.tenant_id in self.model:
                self.model[run.tenant_id].error = True
        assert not {str(t) for t in self.model} & set(report.orphaned_handles)

    @rule(
        op=st.sampled_from(sorted(OPERATIONS)),
        index=st.integers(0, 50),
        fault=FAULT,
        plan=st.sampled_from(["starter", "growth", "enterprise"]),
        change_fault=CHANGE_FAULT,
    )
    def operate(
        self,
        op: str,
        index: int,
        fault: tuple[str, str] | None,
        plan: str,
        change_fault: tuple[str, str] | None,
    ) -> None:
        tenant = self.pick(index)
        if tenant is None:
            return
        model = self.model[tenant.id]
        before = Tenant.objects.get(pk=tenant.id)
        kwargs: dict[str, Any] = {"tenant_id": tenant.id, "actor": ACTOR}
        faults = dict([fault]) if fault and op == "retry" else {}
        if op == "change_plan":
            kwargs["plan"] = plan
            faults = dict([change_fault]) if change_fault else {}
        if faults:
            kwargs["faults"] = faults
        if not model.allows(op, plan):
            with pytest.raises(OperationError) as refused:
                OPERATIONS[op](**kwargs)
            assert refused.value.code == "invalid_state", refused.value.code
            after = Tenant.objects.get(pk=tenant.id)
            assert (after.state, after.last_error, after.workflow_id) == (
                before.state,
                before.last_error,
                before.workflow_id,
            ), f"a refused {op} changed the tenant"
            return
        OPERATIONS[op](**kwargs)
        SEEN[f"{op} accepted" + (" while updating" if model.state == "updating" else "")] += 1
        self.apply(op, model, before, faults, plan)

    def apply(
        self, op: str, model: Model, before: Tenant, faults: dict[str, str], plan: str = ""
    ) -> None:
        """What an accepted operation does to the model (and the work it starts, run now)."""
        tenant = before
        if op in ("cancel", "reset", "retry", "decommission", "change_plan"):
            model.paused = False
        if op == "pause":
            model.paused = True
        elif op == "unpause":
            model.paused = False
        elif op == "cancel" and model.state == "updating":
            drive_compensation(before.workflow_id)
            model.state, model.error = "active", False  # on its old plan, reverted
        elif op == "cancel":
            drive_compensation(before.workflow_id)
            model.state, model.error, model.may_hold = "pending", False, False
        elif op == "change_plan":
            model.state, model.error, model.target, model.faults = "updating", False, plan, faults
        elif op == "reset":
            model.state, model.error, model.may_hold = "pending", False, True
        elif op == "retry":
            model.state, model.error, model.faults = "provisioning", False, faults
        elif op == "suspend":
            model.state = "suspended"
        elif op == "resume":
            model.state = "active"
        elif op == "decommission":
            compensation.decommission_tenant(tenant.id)
            model.state, model.error, model.may_hold = "decommissioned", False, False

    @rule(
        index=st.integers(0, 50),
        plan=st.sampled_from(["starter", "growth", "enterprise"]),
        change_fault=CHANGE_FAULT,
    )
    def change(self, index: int, plan: str, change_fault: tuple[str, str] | None) -> None:
        """Change plan, more often than the other operations, on an active tenant when there
        is one (its outcomes are the newest); and, when the index is odd, at once a few of its
        steps, so that changes complete, fail and are cancelled mid-way."""
        active = [i for i, t in enumerate(self.tenants) if self.model[t.id].state == "active"]
        if active:
            index = active[index % len(active)]
        self.operate("change_plan", index, None, plan, change_fault)
        if index % 2:
            self.advance(index, 1 + index % 4)

    @rule(index=st.integers(0, 50))
    def cancel_a_change(self, index: int) -> None:
        """Cancel, on a tenant whose plan change is at work when there is one (so that changes
        are cancelled mid-way often, whatever else the other rules do)."""
        updating = [i for i, t in enumerate(self.tenants) if self.model[t.id].state == "updating"]
        if updating:
            index = updating[index % len(updating)]
        self.operate("cancel", index, None, "starter", None)

    @rule(
        op=st.sampled_from(SCHEDULABLE),
        index=st.integers(0, 50),
        plan=st.sampled_from(PLANS),
    )
    def schedule(self, op: str, index: int, plan: str) -> None:
        """Ask for an operation an hour from now (it runs in ``run_schedules``); a plan change
        with its plan, which may be the tenant's own by then (refused then)."""
        tenant = self.pick(index)
        if tenant is None:
            return
        Contract.serial += 1
        at = timezone.now() + timezone.timedelta(hours=1, seconds=Contract.serial)
        options = {"plan": plan} if op == "change_plan" else None
        s = schedules.schedule_operation(
            op, tenant_id=tenant.id, actor=ACTOR, at=at, options=options
        )
        assert s.options == (options or {}), s.options
        self.scheduled[s.id] = (op, tenant.id, plan if op == "change_plan" else "")

    @rule(index=st.integers(0, 50), plan=st.sampled_from(PLANS))
    def schedule_a_change(self, index: int, plan: str) -> None:
        """Schedule a plan change, on an active tenant when there is one (so that scheduled
        changes are accepted often, not only refused); when the index is odd, their time
        comes at once."""
        active = [i for i, t in enumerate(self.tenants) if self.model[t.id].state == "active"]
        if active:
            index = active[index % len(active)]
        self.schedule("change_plan", index, plan)
        if index % 2:
            self.run_schedules()

    @rule(index=st.integers(0, 50))
    def cancel_a_schedule(self, index: int) -> None:
        waiting = [i for i in self.scheduled if i not in self.ran]
        if not waiting:
            return
        sid = waiting[index % len(waiting)]
        schedules.cancel_schedule(sid, actor=ACTOR)
        self.ran.add(sid)  # never to run

    @rule()
    def run_schedules(self) -> None:
        """Their time has come: each runs once, as its author, against the state then. One at a
        time, in their order, the model following each (and the work it starts, run now)
        before the next runs."""
        later = timezone.now() + timezone.timedelta(hours=3)
        while ran := schedules.run_due(now=later, batch=1):
            sid = ran[0]
            if sid not in self.scheduled:
                continue  # an earlier example's
            assert sid not in self.ran, f"schedule {sid} ran twice (or after its cancel)"
            self.ran.add(sid)
            op, tenant_id, plan = self.scheduled[sid]
            model = self.model[tenant_id]
            s = Schedule.objects.get(pk=sid)
            if model.allows(op, plan):
                assert s.status == "done", (op, plan, model, s.outcome)
                SEEN[f"scheduled {op} done"] += 1
                # The state then: the tenant as it was when the operation ran.
                before = Tenant.objects.get(pk=tenant_id)
                self.apply(op, model, before, {}, plan)
            else:
                assert s.status == "refused" and s.outcome["code"] == "invalid_state", s.outcome

    @invariant()
    def the_contract_holds(self) -> None:
        for tenant in self.tenants:
            model = self.model[tenant.id]
            row = Tenant.objects.get(pk=tenant.id)
            assert row.state == model.state, (row.slug, row.state, model)
            assert bool(row.last_error) == model.error, (row.slug, row.last_error, model)
            assert (row.state in ("provisioning", "updating")) <= (row.workflow_id is not None)
            assert row.plan == model.plan, (row.slug, row.plan, model)
            held = list(Allocation.objects.filter(tenant=tenant, released_at__isnull=True))
            kinds = [a.kind for a in held]
            assert len(kinds) == len(set(kinds)), f"{row.slug}: duplicate held {kinds}"
            if row.state in ("active", "suspended", "updating"):
                assert sorted(kinds) == sorted(KINDS), (row.slug, kinds)
            if row.state in ("active", "suspended"):
                # No change under way: what the plan decides is the plan's, exactly (after a
                # change cancelled or failed, the old plan's).
                by_kind = {a.kind: a.external_id for a in held}
                size = get_provider("database").read(tenant.id, by_kind["database"], "size_gb")
                billing = get_provider("billing").read(tenant.id, by_kind["billing"], "plan")
                assert (size, billing) == (PLAN_DATABASE_GB[row.plan], row.plan), row.slug
                assert (
                    not AllocationChange.objects.filter(
                        tenant=tenant, run__status__in=["cancelled", "failed"]
                    )
                    .exclude(status="reverted")
                    .exists()
                ), f"{row.slug}: an unreverted change"
            if row.state in ("failed", "decommissioned") or (
                row.state == "pending" and not model.may_hold
            ):
                assert kinds == [], (row.slug, row.state, kinds)
            # The ledger matches reality both ways, kind by kind.
            intended = set(
                AllocationIntent.objects.filter(
                    tenant=tenant, resolved_at__isnull=True
                ).values_list("kind", flat=True)
            )
            for kind in KINDS:
                found = get_provider(kind).lookup(tenant.id)
                mine = [a.external_id for a in held if a.kind == kind]
                if mine:
                    assert found == mine[0], f"{row.slug}: {kind} {mine[0]} is missing"
                elif kind not in intended:
                    assert found is None, f"{row.slug}: {kind} {found} leaked"
            _, problems = verify_chains(tenant_id=tenant.id)
            assert problems == [], problems
            if model.paused and row.state in ("provisioning", "updating"):
                assert row.condition == "paused", (row.slug, row.condition)
                # Only the step at work when it paused may start after the pause.
                paused = (
                    Event.objects.filter(tenant_id=row.id, type="tenant.run.paused")
                    .order_by("-id")
                    .first()
                )
                started = Event.objects.filter(
                    run_id=row.workflow_id,
                    type="tenant.provisioning.step_started",
                    id__gt=paused.id,
                ).values_list("data__step", flat=True)
                assert len(set(started)) <= 1, f"{row.slug}: a paused run went on: {started}"
        # A schedule runs at most once: its operation's first event is recorded once.
        for sid, (op, tenant_id, _) in self.scheduled.items():
            first = FIRST_EVENT[op]
            n = Event.objects.filter(
                tenant_id=tenant_id, type=first, data__schedule=str(sid)
            ).count()
            assert n <= 1, f"schedule {sid} ({op}) ran {n} times"
            status = Schedule.objects.filter(pk=sid).values_list("status", flat=True).first()
            assert (status == "scheduled") == (sid not in self.ran), (sid, status)


def django_settings() -> Any:
    from django.conf import settings as s

    return s


def test_operations_and_step_outcomes_follow_the_contract(fast_saga: Any):
    SEEN.clear()
    run_state_machine_as_test(
        Contract,
        settings=settings(
            derandomize=True,
            database=None,
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    # The plan change was exercised: started, and ended each way (the invariant then checked
    # the old plan's allocations exactly after each cancel and failure).
    assert SEEN["change_plan accepted"] and SEEN["change completed"], SEEN
    assert SEEN["cancel accepted while updating"], SEEN
    assert SEEN["scheduled change_plan done"], SEEN
    print(dict(SEEN))
