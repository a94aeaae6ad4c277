"""Every Celery task name, once.

The names are what the broker carries and what routes and the beat schedule match, so they
are fixed strings (``StrEnum``); code names them as ``TaskName.WATCHDOG`` and a typo is an
``AttributeError`` rather than a message no worker consumes. Nothing here imports Django or an
app, so ``controlplane/settings.py`` can use it too.
"""

from __future__ import annotations

from enum import StrEnum

# A provisioning step's task is this prefix and the step's name (``provisioning.steps.<step>``).
STEP_TASK_PREFIX = "provisioning.steps."


class TaskName(StrEnum):
    COMPENSATE = "provisioning.compensate"
    DECOMMISSION = "provisioning.decommission"
    WATCHDOG = "provisioning.watchdog"
    RECONCILE = "provisioning.reconcile"
    WEBHOOK_DELIVER = "webhooks.deliver"
    WEBHOOK_SWEEP = "webhooks.sweep"
    EXPIRE_APPROVALS = "tenants.expire_approvals"
    RUN_SCHEDULES = "tenants.run_schedules"


def step_task_name(step: str) -> str:
    return f"{STEP_TASK_PREFIX}{step}"
