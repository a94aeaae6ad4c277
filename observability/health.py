"""``/healthz`` (the process serves) and ``/readyz`` (it can do its job).

Neither needs authentication and neither names a host, a URL or an error message in its
answer: a probe only needs to know which check failed, and the answer is public.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .consumers import unconsumed_queues
from .pulse import last_watchdog_pass

log = logging.getLogger(__name__)

# A watchdog pass may be late by two of its intervals (a slow pass, beat restarting) before
# the process is called not ready; the contract says three intervals.
WATCHDOG_MISSED_INTERVALS = 3
BROKER_TIMEOUT_SECONDS = 2.0


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Alive: answers while the process serves. Touches neither the database nor the broker."""
    return JsonResponse({"status": "ok"})


def check_database() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return None


def check_broker() -> str | None:
    from controlplane.celery import app

    with app.connection_for_read(connect_timeout=BROKER_TIMEOUT_SECONDS) as conn:
        conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)  # no retry sleeps
        # Opening a channel makes the transport talk to the server (Redis answers a PING).
        conn.default_channel  # noqa: B018
    return None


def check_watchdog() -> str | None:
    last = last_watchdog_pass()
    if last is None:
        return "the watchdog has not recorded a pass yet"
    allowed = timedelta(seconds=WATCHDOG_MISSED_INTERVALS * settings.CONTROLPLANE_WATCHDOG_INTERVAL)
    age = timezone.now() - last
    if age > allowed:
        return (
            f"the watchdog's last pass was {age.total_seconds():.0f}s ago "
            f"(allowed: {allowed.total_seconds():g}s, three intervals)"
        )
    return None


def check_consumers() -> str | None:
    """Every queue the product uses has had a worker within three watchdog intervals."""
    return unconsumed_queues()


CHECKS: dict[str, Callable[[], str | None]] = {
    "database": check_database,
    "broker": check_broker,
    "watchdog": check_watchdog,
    "consumers": check_consumers,
}
# Checks that read their answer from the database.
NEEDS_DATABASE = ("watchdog", "consumers")


def readiness() -> dict[str, str]:
    """Run every check; each maps to ``"ok"`` or a short reason without secrets."""
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        if name in NEEDS_DATABASE and results.get("database") != "ok":
            # Without the database the watchdog's and the workers' records cannot be read.
            results[name] = "unknown (the database is unavailable)"
            continue
        try:
            problem = check()
        except Exception as exc:  # noqa: BLE001 - any failure of a check is "not ready"
            # The exception's text may carry a host name or a URL with a password: log it for
            # operators, answer only its kind.
            log.warning("readiness check %s failed", name, exc_info=True)
            problem = f"unavailable ({type(exc).__name__})"
        results[name] = "ok" if problem is None else problem
    return results


@require_safe
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    checks = readiness()
    failing = [name for name, result in checks.items() if result != "ok"]
    body = {"status": "unavailable" if failing else "ok", "checks": checks}
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=503 if failing else 200)
