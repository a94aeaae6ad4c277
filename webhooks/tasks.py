"""Celery tasks of the webhooks: thin, like the saga's."""

from __future__ import annotations

from celery import shared_task

from controlplane.task_names import TaskName

from . import sender


@shared_task(name=TaskName.WEBHOOK_DELIVER, acks_late=True, ignore_result=True)
def deliver(delivery_id: str) -> str:
    return sender.deliver(delivery_id)


@shared_task(name=TaskName.WEBHOOK_SWEEP, acks_late=False, ignore_result=True)
def sweep() -> dict[str, int]:
    report = sender.sweep()
    return {"reclaimed": len(report.reclaimed), "republished": len(report.republished)}
