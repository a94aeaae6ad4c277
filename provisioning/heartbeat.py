"""The heartbeat of a working step, and how it tells the work to stop."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid

from django.conf import settings
from django.db import connections
from django.utils import timezone

from .models import Run, RunStatus, StepExecution, StepStatus
from .providers import ProviderError

log = logging.getLogger(__name__)


class Aborted(Exception):
    """The step's run stopped being live while it worked (cancel, reset, a newer try)."""


class StepTimedOut(ProviderError):
    pass


class Heartbeat:
    """Beats for a working step, and notices when it should stop.

    Each beat is a conditional UPDATE that only matches the step's current try of a running
    run: when it matches nothing the run was cancelled, orphaned or the try superseded, and
    the work is asked to stop (``aborted``). The beats also enforce the step timeout.

    The beats come from one thread per process (``_Beater``), which serves every step at work
    in the process (one in a prefork child, several in a thread pool): a thread started and
    joined for each step cost 0.2 ms of a step's CPU (about 5 %), and most steps end long
    before their first beat.
    """

    def __init__(self, step_id: int, run_id: uuid.UUID, token: uuid.UUID) -> None:
        self.step_id = step_id
        self.run_id = run_id
        self.token = token
        self.aborted = threading.Event()
        self.timed_out = threading.Event()
        self.started = time.monotonic()
        self.due = self.started
        # Held while a beat of this step runs: leaving waits for it, so that once the work is
        # over no beat of it is still writing.
        self.beating = threading.Lock()

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

    def tick(self) -> bool:
        """One wake-up of the beater for this step: enforce the timeout, beat. False when the
        step should stop (timed out, or its try is no longer live): no more beats for it."""
        if time.monotonic() - self.started > settings.CONTROLPLANE_STEP_TIMEOUT:
            self.timed_out.set()
            self.aborted.set()
            return False
        try:
            alive = self.beat()
        except Exception:  # noqa: BLE001 - a missed beat is for the watchdog to judge
            log.warning("heartbeat for step %s failed", self.step_id, exc_info=True)
            return True
        if not alive:
            self.aborted.set()
            return False
        return True

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
        _beater().add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _beater().remove(self)
        with self.beating:  # a beat under way ends first
            pass


class _Beater:
    """The process's heartbeat thread: wakes when the next step at work is due a beat (every
    ``CONTROLPLANE_HEARTBEAT_INTERVAL`` from its start) and sleeps while no step is at work.
    Once no step is left it closes the database connection its beats opened, as the thread
    of a step used to at the step's end."""

    def __init__(self) -> None:
        self.working: set[Heartbeat] = set()
        self.changed = threading.Condition()
        # When the thread wakes next (None: not until told). A step due later than that needs
        # no wake-up: most steps end before their first beat, and cost the thread nothing.
        self.wake_at: float | None = None
        self.connected = False  # a beat opened this thread's database connection
        self.thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self.thread.start()

    def add(self, hb: Heartbeat) -> None:
        with self.changed:
            hb.due = hb.started + settings.CONTROLPLANE_HEARTBEAT_INTERVAL
            self.working.add(hb)
            if self.wake_at is None or hb.due < self.wake_at:
                self.changed.notify()

    def remove(self, hb: Heartbeat) -> None:
        with self.changed:
            self.working.discard(hb)
            if not self.working and self.connected:
                self.changed.notify()  # to close its connection now

    def _due(self) -> list[Heartbeat]:
        """Wait until some step is due a beat; return those that are."""
        while True:
            with self.changed:
                if self.working:
                    now = time.monotonic()
                    due = [hb for hb in self.working if hb.due <= now]
                    if due:
                        self.wake_at = now
                        return due
                    self.wake_at = min(hb.due for hb in self.working)
                    self.changed.wait(self.wake_at - now)
                    continue
                if not self.connected:
                    self.wake_at = None
                    self.changed.wait()
                    continue
                self.connected = False
            for conn in connections.all(initialized_only=True):
                conn.close()

    def _loop(self) -> None:
        while True:
            for hb in self._due():
                with hb.beating:
                    with self.changed:
                        if hb not in self.working:  # its work ended meanwhile
                            continue
                        self.connected = True
                    try:
                        keep = hb.tick()
                    except Exception:  # noqa: BLE001 - the thread serves every other step too
                        log.exception("heartbeat for step %s failed", hb.step_id)
                        keep = True
                with self.changed:
                    if not keep:
                        self.working.discard(hb)
                    hb.due = time.monotonic() + settings.CONTROLPLANE_HEARTBEAT_INTERVAL


_the_beater: _Beater | None = None
_beater_lock = threading.Lock()


def _beater() -> _Beater:
    global _the_beater  # noqa: PLW0603 - one per process, made on first use
    beater = _the_beater
    if beater is None or not beater.thread.is_alive():
        with _beater_lock:
            if _the_beater is None or not _the_beater.thread.is_alive():
                _the_beater = _Beater()
            beater = _the_beater
    return beater


def _forget_beater() -> None:
    """A forked child has no thread of its parent's: it makes its own on first use."""
    global _the_beater, _beater_lock  # noqa: PLW0603
    _the_beater = None
    _beater_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_beater)
