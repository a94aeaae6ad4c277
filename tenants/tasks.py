"""Celery tasks of the tenants app: the approval policy's expiry pass and the scheduled
operations' pass (beat runs both)."""

from __future__ import annotations

from celery import shared_task

from controlplane.task_names import TaskName

from . import approvals, schedules


@shared_task(name=TaskName.EXPIRE_APPROVALS, acks_late=False, ignore_result=True)
def expire_approvals() -> int:
    return approvals.expire_approvals()


@shared_task(name=TaskName.RUN_SCHEDULES, acks_late=False, ignore_result=True)
def run_schedules() -> int:
    """Run every scheduled operation whose time has come (at most once each; see
    ``tenants.schedules.run_due``)."""
    return len(schedules.run_due())
