"""Sending a step's message: by task name (the saga never imports the task module, which
imports the saga), at its run's priority (see ``provisioning.admission``)."""

from __future__ import annotations

import uuid

from celery import current_app


def publish_step(
    name: str, step_id: int, token: uuid.UUID, countdown: float = 0, *, priority: int = 0
) -> None:
    current_app.send_task(
        f"provisioning.steps.{name}",
        args=[step_id, str(token)],
        countdown=countdown or None,
        priority=priority or None,
    )
