"""The approval policy's periodic pass (beat runs it with the watchdog's interval)."""

from __future__ import annotations

from celery import shared_task

from . import approvals


@shared_task(name="tenants.expire_approvals", acks_late=False, ignore_result=True)
def expire_approvals() -> int:
    return approvals.expire_approvals()
