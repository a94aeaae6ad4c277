"""Send a delivery's task to the broker, by the task's name.

The sender (a retry after backoff, the sweep), the outbox (a new event) and the services (an
operator's redeliver) all publish deliveries; naming the task (``TaskName.WEBHOOK_DELIVER``)
rather than importing it keeps ``webhooks.tasks`` at the top (tasks call the sender, never the
other way round), as ``provisioning.broker`` publishes the saga's steps.
"""

from __future__ import annotations

from celery import current_app

from controlplane.task_names import TaskName


def publish_delivery(delivery_id: str, countdown: float = 0) -> None:
    current_app.send_task(TaskName.WEBHOOK_DELIVER, args=[delivery_id], countdown=countdown or None)
