"""Celery tasks of the tenants app: the approval policy's expiry pass and the scheduled
operations' pass (beat runs both)."""

from __future__ import annotations

from celery import shared_task

from . import approvals, schedules


@shared_task(name="tenants.expire_approvals", acks_late=False, ignore_result=True)
def expire_approvals() -> int:
    return approvals.expire_approvals()


@shared_task(name="tenants.run_schedules", acks_late=False, ignore_result=True)
def run_schedules() -> int:
    """Run every scheduled operation whose time has come (at most once each; see
    ``tenants.schedules.run_due``)."""
    return len(schedules.run_due())
