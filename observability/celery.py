"""Celery's side of logging: JSON lines from worker and beat, and task ids on every line.

``install(app)`` is called where the Celery app is made (``controlplane/celery.py``), before
any worker or beat sets up its logging.

- Every task runs with ``log_context`` set to its task name and id and, for the saga's step
  tasks, the step's name and id (and, with JSON logs on, its run and tenant, read in one
  query); compensation and decommission tasks carry their run or tenant id.
- With ``CONTROLPLANE_LOG_FORMAT=json``, Celery is told not to configure logging at all
  (a ``setup_logging`` receiver): Django's ``LOGGING`` (the JSON formatter on the root
  logger) is applied instead, so Celery's own loggers (``celery.*``) propagate to the same
  handler. The worker's start-up banner, which Celery prints rather than logs, becomes one
  log line, and the shutdown notices it writes from its signal handlers become JSON lines
  (``_say_json``). ``celery beat`` prints its banner: run it as
  ``celery -A controlplane --quiet beat``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.config
import os
import sys
from datetime import UTC, datetime
from typing import Any

from celery import Celery, signals

from controlplane.task_names import STEP_TASK_PREFIX, TaskName

from .logs import log_context

log = logging.getLogger("controlplane.celery")

_tokens: dict[str, Any] = {}


def json_logs_enabled() -> bool:
    # Read from the environment, as settings.py does (which refuses any other value): this
    # runs when the Celery app is imported, and must not load Django's settings that early
    # (a test run's plugins set variables the settings read).
    return os.environ.get("CONTROLPLANE_LOG_FORMAT", "plain").strip().lower() == "json"


def task_ids(task_name: str, args: tuple[Any, ...] | list[Any]) -> dict[str, Any]:
    ids: dict[str, Any] = {}
    if task_name.startswith(STEP_TASK_PREFIX) and args:
        ids["step"] = task_name.removeprefix(STEP_TASK_PREFIX)
        ids["step_id"] = args[0]
        if json_logs_enabled():
            from provisioning.models import StepExecution

            found = (
                StepExecution.objects.filter(pk=args[0])
                .values_list("run_id", "run__tenant_id")
                .first()
            )
            if found is not None:
                ids["run_id"], ids["tenant_id"] = found
    elif task_name == TaskName.COMPENSATE and args:
        ids["run_id"] = args[0]
    elif task_name == TaskName.DECOMMISSION and args:
        ids["tenant_id"] = args[0]
    elif task_name.startswith("webhooks.") and args:
        ids["delivery_id"] = args[0]
    return ids


def _task_prerun(
    sender: Any = None, task_id: str | None = None, task: Any = None, args: Any = (), **kw: Any
) -> None:
    name = getattr(task, "name", "") or ""
    ids: dict[str, Any] = {"task": name, "task_id": task_id}
    try:
        ids.update(task_ids(name, tuple(args or ())))
    except Exception:  # noqa: BLE001 - logging context must never fail a task
        log.debug("could not read the ids of task %s", task_id, exc_info=True)
    _tokens[task_id or ""] = log_context.set(ids)


def _task_postrun(sender: Any = None, task_id: str | None = None, **kw: Any) -> None:
    token = _tokens.pop(task_id or "", None)
    if token is not None:
        try:
            log_context.reset(token)
        except ValueError:  # set in another context (a thread pool's other thread)
            log_context.set(None)


def _setup_logging(**kw: Any) -> None:
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


def _after_worker_setup(sender: str | None = None, instance: Any = None, **kw: Any) -> None:
    if instance is None or getattr(instance, "quiet", True):
        return
    # Celery prints this banner to stdout; as one log line it stays parseable.
    instance.quiet = True
    log.info("celery worker %s starting\n%s", sender, instance.startup_info(artlines=False))


def _say_json(msg: str, f: Any = None) -> None:
    """Stands in for ``celery.apps.worker.safe_say`` (the shutdown notices Celery prints from
    its signal handlers): the same single ``os.write``, no logging locks, but a JSON line."""
    stream = f if f is not None else sys.__stderr__
    line = {
        "time": datetime.now(tz=UTC).isoformat(timespec="milliseconds"),
        "level": "WARNING",
        "logger": "celery.apps.worker",
        "message": str(msg).strip(),
        "process": os.getpid(),
    }
    with contextlib.suppress(OSError, AttributeError, ValueError):
        os.write(stream.fileno(), (json.dumps(line) + "\n").encode())


def install(app: Celery) -> None:
    from .consumers import PresenceStep

    # Each worker stamps the queues it consumes (for /readyz's "consumers" and /metrics).
    app.steps["consumer"].add(PresenceStep)
    signals.task_prerun.connect(_task_prerun, weak=False)
    signals.task_postrun.connect(_task_postrun, weak=False)
    if json_logs_enabled():
        # At once, not only when Celery sets up logging: warnings issued before that (Celery's
        # "running as root" SecurityWarning) go through the JSON handler too.
        _setup_logging()
        logging.captureWarnings(True)
        signals.setup_logging.connect(_setup_logging, weak=False)
        signals.celeryd_after_setup.connect(_after_worker_setup, weak=False)
        from celery.apps import worker as celery_worker

        celery_worker.safe_say = _say_json
