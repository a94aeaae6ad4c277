"""The saga's side of the broker: sending a step's message, and what the watchdog asks the
broker (did it lose its data, which step messages does it hold).

``publish_step`` sends by task name (the saga never imports the task module, which imports the
saga), at its run's priority (see ``provisioning.admission``).

Both answers let the watchdog tell a step that is *queued* (waiting its turn: normal under
load, never a lost try) from one whose message *may have been lost* (a broker restart without
persistence, a publish that failed after its commit, a worker that died holding a prefetched
message), without filling a long queue with copies of its own messages:

- ``broker_lost_its_data()``: a marker key the watchdog sets if absent. A Redis that restarted
  empty (or was flushed) has lost the marker with the queues: the first pass after that finds
  it missing and re-publishes every queued step once.
- ``held_step_messages()``: the (step id, token) of every step message the broker visibly
  holds: waiting in the step queue's lists, or delivered to a worker within ``recent`` seconds
  and not yet acknowledged (a worker that has held one longer than that without starting it is
  presumed dead). A queued step whose message is among them is waiting, not lost.

Both read the Redis transport's own structures (the queue lists, kombu's ``unacked`` hash and
``unacked_index`` sorted set, through the transport's channel so its key names and priority
lists are the ones in use). Another broker answers "cannot tell" (None); the watchdog then
falls back on its backed-off safety re-publish alone.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any

from celery import current_app

from controlplane.task_names import STEP_TASK_PREFIX

log = logging.getLogger(__name__)

EPOCH_KEY = "controlplane:broker-epoch"


def _redis_channel(conn: Any) -> Any | None:
    if conn.transport.driver_type != "redis":
        return None
    return conn.default_channel


def broker_lost_its_data() -> bool | None:
    """Set the epoch marker if it is absent. True when it was absent (the broker lost its data,
    or this is the first pass ever), False when it was there, None for a broker that is not
    Redis.

    When it was absent the product's queues are declared again first: the Redis transport
    routes a message through the queue's binding (``_kombu.binding.<exchange>``), which went
    with the data, and a publisher that declared the queue before does not declare it again
    (kombu remembers what it declared), so until a consumer reconnects every message sent to
    that queue would be dropped, the re-published ones included.
    """
    with current_app.connection_for_write() as conn:
        channel = _redis_channel(conn)
        if channel is None:
            return None
        created = channel.client.set(EPOCH_KEY, uuid.uuid4().hex, nx=True)
        if created:
            for queue in current_app.amqp.queues.values():
                queue.bind(channel).declare()
    if created:
        log.warning("the broker has no epoch marker: re-publishing every queued step once")
    return bool(created)


def _step_of(payload: Any) -> tuple[int, str] | None:
    """(step id, token) of a step task's message as the Redis transport stores it."""
    try:
        headers = payload.get("headers") or {}
        if not str(headers.get("task", "")).startswith(STEP_TASK_PREFIX):
            return None
        body = payload["body"]
        if (payload.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return int(args[0]), str(uuid.UUID(str(args[1])))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None


def _decode(raw: bytes | str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def held_step_messages(queue: str, *, recent: float) -> set[tuple[int, str]] | None:
    """Every (step id, token) whose message is waiting in ``queue`` or was delivered to a
    worker less than ``recent`` seconds ago and not yet acknowledged. None: cannot tell.

    Costs one ``LRANGE`` per priority list of the queue and one sorted-set range plus one
    ``HMGET`` over the unacknowledged messages; the watchdog calls it only when some step has
    waited long enough to be suspected.
    """
    with current_app.connection_for_read() as conn:
        channel = _redis_channel(conn)
        if channel is None:
            return None
        client = channel.client
        lists = {channel._q_for_pri(queue, pri) for pri in channel.priority_steps}
        waiting: list[Any] = []
        for name in sorted(lists):
            waiting.extend(_decode(raw) for raw in client.lrange(name, 0, -1))
        tags = client.zrangebyscore(channel.unacked_index_key, time.time() - recent, "+inf")
        delivered: Iterable[Any] = []
        if tags:
            delivered = (
                (entry[0] if isinstance(entry, list) and entry else None)
                for entry in (
                    _decode(raw) for raw in client.hmget(channel.unacked_key, tags) if raw
                )
            )
    held = set()
    for payload in [*waiting, *delivered]:
        found = _step_of(payload) if isinstance(payload, dict) else None
        if found is not None:
            held.add(found)
    return held


def publish_step(
    name: str, step_id: int, token: uuid.UUID, countdown: float = 0, *, priority: int = 0
) -> None:
    current_app.send_task(
        f"{STEP_TASK_PREFIX}{name}",
        args=[step_id, str(token)],
        countdown=countdown or None,
        priority=priority or None,
    )
