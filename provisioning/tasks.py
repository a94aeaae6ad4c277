"""Celery tasks: thin wrappers that take ids and call the saga.

Every step of the contract has its own task (a task then goes on with its tenant's next steps
while its chain is open: ``saga.execute_chain``), so a worker's log and a broker's queue name the
step. No task needs a result backend: the database holds every outcome.
"""

from __future__ import annotations

from celery import shared_task
from celery.app.task import Task

from audit.checkpoints import take_checkpoint
from controlplane.task_names import TaskName, step_task_name
from observability.pulse import record_watchdog_pass
from tenants.models import TenantCount

from . import compensation, saga, watchdog
from .kinds import ALL_STEPS


def _make_step_task(name: str) -> Task:
    def run_step(self: Task, step_id: int, token: str) -> None:
        delivery = self.request.delivery_info or {}
        saga.execute_chain(step_id, token, redelivered=bool(delivery.get("redelivered")))

    run_step.__name__ = name
    run_step.__qualname__ = name
    return shared_task(name=step_task_name(name), acks_late=True, bind=True)(run_step)


STEP_TASKS: dict[str, Task] = {name: _make_step_task(name) for name in ALL_STEPS}


@shared_task(name=TaskName.COMPENSATE, acks_late=True)
def compensate(run_id: str) -> None:
    compensation.compensate_run(run_id)


@shared_task(name=TaskName.DECOMMISSION, acks_late=True)
def decommission(tenant_id: str) -> None:
    compensation.decommission_tenant(tenant_id)


@shared_task(name=TaskName.WATCHDOG, acks_late=False, ignore_result=True)
def run_watchdog() -> dict[str, int]:
    report = watchdog.run_watchdog()
    # Fold the fleet counts' deltas (tenants.models.TenantCount) while we are here: a periodic
    # pass that always runs keeps that table a few dozen rows long.
    TenantCount.objects.compact()
    # The audit chains' heads, signed, out of the database (audit/checkpoints.py): a pass
    # that finds nothing new writes nothing.
    take_checkpoint()
    record_watchdog_pass()  # for /readyz and /metrics (observability.pulse)
    return {
        key: value if isinstance(value, int) else len(value) for key, value in vars(report).items()
    }


@shared_task(name=TaskName.RECONCILE, acks_late=False, ignore_result=True)
def run_reconciliation() -> dict[str, int]:
    from . import reconcile

    return reconcile.run_reconciliation()
