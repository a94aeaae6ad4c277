"""The heartbeat of a working step, and how it tells the work to stop."""

from __future__ import annotations

import logging
import threading
import time
import uuid

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .models import Run, RunStatus, StepExecution, StepStatus
from .providers import ProviderError

log = logging.getLogger(__name__)


class Aborted(Exception):
    """The step's run stopped being live while it worked (cancel, reset, a newer try)."""


class StepTimedOut(ProviderError):
    pass


class Heartbeat:
    """Beats for a working step in a thread, and notices when it should stop.

    Each beat is a conditional UPDATE that only matches the step's current try of a running
    run: when it matches nothing the run was cancelled, orphaned or the try superseded, and
    the work is asked to stop (``aborted``). The thread also enforces the step timeout.
    """

    def __init__(self, step_id: int, run_id: uuid.UUID, token: uuid.UUID) -> None:
        self.step_id = step_id
        self.run_id = run_id
        self.token = token
        self.stop = threading.Event()
        self.aborted = threading.Event()
        self.timed_out = threading.Event()
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{step_id}", daemon=True)

    def beat(self) -> bool:
        now = timezone.now()
        matched = StepExecution.objects.filter(
            pk=self.step_id,
            token=self.token,
            status=StepStatus.RUNNING,
            run__status=RunStatus.RUNNING,
            run__compensating=False,
        ).update(heartbeat_at=now)
        if matched:
            Run.objects.filter(pk=self.run_id, status=RunStatus.RUNNING).update(heartbeat_at=now)
        return bool(matched)

    def _loop(self) -> None:
        try:
            while not self.stop.wait(settings.CONTROLPLANE_HEARTBEAT_INTERVAL):
                if time.monotonic() - self.started > settings.CONTROLPLANE_STEP_TIMEOUT:
                    self.timed_out.set()
                    self.aborted.set()
                    return
                try:
                    alive = self.beat()
                except Exception:  # noqa: BLE001 - a missed beat is for the watchdog to judge
                    log.warning("heartbeat for step %s failed", self.step_id, exc_info=True)
                    continue
                if not alive:
                    self.aborted.set()
                    return
        finally:
            connection.close()

    def sleep(self, seconds: float) -> None:
        """Wait while beating; stop early when the run is cancelled or the step timed out."""
        if self.aborted.wait(seconds):
            self.check()

    def check(self) -> None:
        if self.timed_out.is_set():
            raise StepTimedOut(f"step took longer than {settings.CONTROLPLANE_STEP_TIMEOUT:g}s")
        if self.aborted.is_set():
            raise Aborted()

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join()
