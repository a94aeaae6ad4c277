"""What every process can read about the others: when each periodic job last finished a pass."""

from __future__ import annotations

from django.db import models


class Pulse(models.Model):
    """One row per periodic job (``watchdog``): the time its last pass finished.

    Written by the job itself at the end of each pass, read by ``/readyz`` and ``/metrics`` in
    any process. A table rather than process memory or a local file, so that it is true however
    many web processes ask and wherever beat runs.
    """

    name = models.CharField(max_length=64, primary_key=True)
    at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M:%S}"


class Tally(models.Model):
    """A counter every process adds to: one row per name, one statement per increment.

    For what happens often, matters only as a number, and leaves no other row behind: a login
    refused during a lockout (an audit row each let a script write 31 rows in 2.3 s, issue 23).
    A row rather than process memory for the reason given in ``observability/metrics.py``.
    """

    name = models.CharField(max_length=64, primary_key=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"


class QueueConsumer(models.Model):
    """A worker consuming a queue, as that worker last said so (``observability.consumers``).

    One row per (queue, worker), stamped by the worker itself every watchdog interval while it
    consumes; a row that has not been stamped for three intervals names a worker that is gone
    (or stopped consuming). ``/readyz`` and ``/metrics`` read it in any process.
    """

    queue = models.CharField(max_length=200)
    worker = models.CharField(max_length=200)
    seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["queue", "worker"], name="queue_consumer_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.worker} on {self.queue} at {self.seen_at:%Y-%m-%d %H:%M:%S}"
