"""Django's connection health check without a round trip when the socket already answers it.

``CONN_HEALTH_CHECKS`` makes Django send ``SELECT 1`` on a kept connection's first use in each
request (and, through ``controlplane.celery``, each task): a round trip to PostgreSQL every
time, a sixth of a cached API read in process. A server that ends a session says so on its
socket (an error message, then the end of the stream), so a socket with nothing to read is a
session the server has not ended: it is marked checked, and only a socket with something on it
(or a closed or broken connection) is checked with ``SELECT 1``. A network that drops silently
is seen by neither check; the statement fails then, as it would a moment after a ``SELECT 1``
that passed.
"""

from __future__ import annotations

import select
from typing import Any

from django.core.signals import request_started
from django.db import connections

_UID = "controlplane.dbhealth"


def connect() -> None:
    """Connect the check to ``request_started``, after every receiver connected so far:
    receivers run in the order they were connected, and it must follow Django's
    ``close_old_connections`` (connected when ``django.db`` is imported, before any app is
    ready), which marks the kept connections for a check. Called by ``controlplane.apps``."""
    request_started.disconnect(dispatch_uid=_UID)
    request_started.connect(skip_needless_health_checks, dispatch_uid=_UID)


def skip_needless_health_checks(**_: Any) -> None:
    """After Django's ``close_old_connections``: mark each kept connection whose socket is
    quiet as checked (connected to ``request_started`` by ``connect``)."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.health_check_done:
            conn.health_check_done = nothing_to_read(conn.connection)


def nothing_to_read(raw: Any) -> bool:
    """Whether a psycopg connection is open and idle with nothing waiting on its socket."""
    try:
        if raw.closed or raw.broken:
            return False
        poller = select.poll()
        poller.register(raw.fileno(), select.POLLIN | select.POLLPRI)
    except Exception:  # noqa: BLE001 - cannot tell: let Django's own check decide
        return False
    return not poller.poll(0)
