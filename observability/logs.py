"""One JSON object per log line (``CONTROLPLANE_LOG_FORMAT=json``), for web, worker and beat.

Each line has ``time`` (ISO 8601 UTC), ``level``, ``logger``, ``message`` and, where known,
``tenant_id``, ``run_id``, ``step`` and ``step_id``: given with ``extra=`` on the call, or
taken from ``log_context`` (a context variable the Celery task hooks set for the task being
run, see ``observability.celery``). ``exc_info`` becomes ``exception`` (the traceback text).
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

# The ids a line may carry, in the order they are written.
CONTEXT_KEYS = ("tenant_id", "run_id", "step", "step_id", "delivery_id", "task", "task_id")

log_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "controlplane_log_context", default=None
)


@contextmanager
def bound(**ids: Any) -> Iterator[None]:
    """Add ids to every line logged inside the block (this thread or task only)."""
    current = log_context.get() or {}
    token = log_context.set({**current, **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        log_context.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        context = log_context.get() or {}
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is None:
                value = context.get(key)
            if value is not None:
                line[key] = str(value) if not isinstance(value, int | float) else value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # One line whatever the message holds: json.dumps escapes newlines.
        return json.dumps(line, default=str, ensure_ascii=False)
