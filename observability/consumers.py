"""Who consumes which queue, known across machines without ``celery inspect``.

Every worker stamps, for each queue it consumes, a row ``(queue, worker, seen_at)``
(``QueueConsumer``): once when its consumer starts and then every watchdog interval on the
worker's own timer, for as long as the consumer runs (a consumer bootstep, ``PresenceStep``,
installed by ``observability.celery.install``). ``/readyz`` fails, naming the queue, when no
row of a product queue is younger than three watchdog intervals; ``/metrics`` counts the
fresh rows per queue.

Why rows in the database and not something else:

- ``celery inspect`` / remote control asks the workers over the broker and waits for their
  answers: slow, and a probe must not depend on every worker answering within a timeout.
- Celery's event heartbeats (``heartbeat_sent``) need the gossip/heartbeat machinery that our
  workers run without (``--without-gossip --without-heartbeat``) and carry no queue names.
- The Redis transport's ``_kombu.binding.<queue>`` sets say a queue was declared, not that
  anyone is consuming it now: they outlive every worker.
- A Redis key with a TTL would vanish with the broker's data (the restart this project guards
  against) and would make ``/metrics`` talk to the broker.

A row per worker and queue, written by the consumer while it consumes, is exact (a worker's
queues are read from its running task consumer, so ``-Q`` and queues added at run time are
what is stamped) and cheap: one upsert statement per worker per interval, and one aggregate
query per probe or scrape. Its time base is each writer's clock, like the watchdog's pulse.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from celery import bootsteps
from django.conf import settings
from django.db.models import Count, Max, Q
from django.utils import timezone

log = logging.getLogger(__name__)

# Like the watchdog's pulse: a consumer may miss two stamps (a slow database, a busy loop)
# before its queue is called unconsumed; the contract says three intervals.
MISSED_INTERVALS = 3
# Rows of workers gone this long are deleted when a worker starts (they only say "gone").
FORGET_AFTER = timedelta(days=1)


def product_queues() -> tuple[str, ...]:
    return tuple(settings.CONTROLPLANE_QUEUES)


def allowed_silence() -> timedelta:
    return timedelta(seconds=MISSED_INTERVALS * settings.CONTROLPLANE_WATCHDOG_INTERVAL)


def record_consumers(*, worker: str, queues: list[str], now: datetime | None = None) -> None:
    """Stamp that ``worker`` consumes ``queues`` now: one upsert statement."""
    from .models import QueueConsumer

    at = now or timezone.now()
    QueueConsumer.objects.bulk_create(
        [QueueConsumer(queue=queue, worker=worker, seen_at=at) for queue in sorted(set(queues))],
        update_conflicts=True,
        unique_fields=["queue", "worker"],
        update_fields=["seen_at"],
    )


def forget_gone_workers(now: datetime | None = None) -> int:
    from .models import QueueConsumer

    cutoff = (now or timezone.now()) - FORGET_AFTER
    deleted, _ = QueueConsumer.objects.filter(seen_at__lt=cutoff).delete()
    return deleted


def queue_consumers(now: datetime | None = None) -> dict[str, tuple[int, datetime | None]]:
    """Per product queue: how many workers consumed it within three watchdog intervals, and
    when any worker last did (None: never). One aggregate query."""
    from .models import QueueConsumer

    cutoff = (now or timezone.now()) - allowed_silence()
    found = {
        row["queue"]: (row["fresh"], row["last"])
        for row in QueueConsumer.objects.order_by()
        .filter(queue__in=product_queues())
        .values("queue")
        .annotate(fresh=Count("pk", filter=Q(seen_at__gte=cutoff)), last=Max("seen_at"))
    }
    return {queue: found.get(queue, (0, None)) for queue in product_queues()}


def unconsumed_queues(now: datetime | None = None) -> str | None:
    """The ``consumers`` check of ``/readyz``: None, or which queues have no consumer."""
    now = now or timezone.now()
    problems = []
    for queue, (fresh, last) in queue_consumers(now).items():
        if fresh:
            continue
        if last is None:
            problems.append(f"no worker has consumed queue {queue!r}")
        else:
            problems.append(
                f"no worker has consumed queue {queue!r} for "
                f"{(now - last).total_seconds():.0f}s (allowed: "
                f"{allowed_silence().total_seconds():g}s, three watchdog intervals)"
            )
    return "; ".join(problems) or None


class PresenceStep(bootsteps.StartStopStep):
    """A consumer bootstep: stamps this worker's queues while its task consumer runs.

    Started after the task consumer (``Tasks``), so the queues read are the ones really
    consumed; stopped with it (a lost broker connection restarts the consumer's steps), so a
    worker that cannot consume stops stamping. The stamp runs on the consumer's own timer: no
    thread of ours beside a prefork pool's forks.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        self.tref: Any = None
        super().__init__(c, **kwargs)

    def start(self, c: Any) -> None:
        self.stamp(c)
        try:
            forget_gone_workers()  # at a worker's start: rows of workers gone for a day
        except Exception:  # noqa: BLE001 - housekeeping only
            log.warning("could not forget gone workers", exc_info=True)
        interval = max(0.2, float(settings.CONTROLPLANE_WATCHDOG_INTERVAL))
        self.tref = c.timer.call_repeatedly(interval, self.stamp, (c,), priority=10)

    def stop(self, c: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    # A stopping worker's rows are left to age: its queues count as consumed for three more
    # intervals, time enough for a restart, as the contract's "three intervals" intends.
    shutdown = stop

    def stamp(self, c: Any) -> None:
        from django.db import close_old_connections

        consumer = getattr(c, "task_consumer", None)
        queues = [q.name for q in consumer.queues] if consumer is not None else []
        if not queues:
            return
        # The worker's main process keeps this connection between stamps: drop it if the
        # database went away since (CONN_HEALTH_CHECKS), so the next stamp heals.
        close_old_connections()
        try:
            record_consumers(worker=c.hostname, queues=queues)
        except Exception:  # noqa: BLE001 - a missed stamp is for /readyz to judge
            log.warning("could not stamp the queues of %s", c.hostname, exc_info=True)
            close_old_connections()
