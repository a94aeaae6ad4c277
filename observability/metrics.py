"""``/metrics``: Prometheus series computed from the database at scrape time.

Why from the database and not from counters kept in process memory: web and worker processes
come and go and any number of them run; a counter incremented in one gunicorn worker is seen
only by scrapes that reach that worker, and is lost when it restarts. Every number here is
read from durable rows instead (tenants, step executions, audit events, the watchdog's pulse),
so any process answers the same thing, and restarts lose nothing. Counters stay monotonic
because the rows they count are never deleted (events are append-only; step executions and
runs are kept for the run history).

A scrape costs a fixed number of queries (``SCRAPE_QUERIES``), each one aggregate; the
histogram's buckets are counted by the database, not by fetching rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import (
    Case,
    Count,
    DurationField,
    F,
    IntegerField,
    Min,
    Sum,
    When,
)
from django.db.models import Value as V
from django.db.models.expressions import ExpressionWrapper
from django.db.models.fields.json import KeyTextTransform
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from audit.models import Event
from provisioning import admission
from provisioning.models import STEP_KIND, STEPS, RunStatus, StepExecution, StepStatus
from tenants import selectors
from tenants.models import NEEDS_ATTENTION, TenantState

from .consumers import queue_consumers
from .pulse import last_watchdog_pass
from .tally import LOGINS_REFUSED
from .tally import value as tally_value

# Steps take milliseconds (validate_request, a reused allocation) to minutes (a slow outside
# service, up to CONTROLPLANE_STEP_TIMEOUT, 600 s by default).
STEP_DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
)

# Operations and outcomes, read from the audit events each one records. A refused operation
# changes nothing and records nothing, so it is not counted here (the API's 409s show in the
# web server's access log).
OPERATION_EVENTS: dict[str, tuple[str, str]] = {
    "tenant.created": ("create", "accepted"),
    "tenant.provisioning.started": ("provision", "started"),
    "tenant.provisioning.completed": ("provision", "completed"),
    "tenant.provisioning.failed": ("provision", "failed"),
    "tenant.provisioning.retry_requested": ("retry", "accepted"),
    "tenant.provisioning.cancel_requested": ("cancel", "accepted"),
    "tenant.provisioning.cancelled": ("cancel", "completed"),
    "tenant.provisioning.reset_started": ("reset", "accepted"),
    "tenant.provisioning.reset_completed": ("reset", "completed"),
    "tenant.provisioning.reset_failed": ("reset", "failed"),
    "tenant.suspended": ("suspend", "completed"),
    "tenant.resumed": ("resume", "completed"),
    "tenant.decommission_requested": ("decommission", "accepted"),
    "tenant.decommissioned": ("decommission", "completed"),
}

# tenants by state and needing attention (one read), step durations, step failures,
# operations, watchdog, logins refused, queue consumers, queued steps, re-published steps; two
# more with CONTROLPLANE_PROVIDER_LIMITS (slots in use, waiters).
SCRAPE_QUERIES = 9


def tenant_counts() -> tuple[dict[str, int], dict[str, int]]:
    """Tenants by state, and those needing an operator by condition: the console list's own
    counts (``tenants.selectors.fleet_counts``), exact, one query that does not grow with the
    fleet on PostgreSQL."""
    counts = selectors.fleet_counts()
    attention = {c: counts.by_condition[c] for c in NEEDS_ATTENTION}
    return {s: counts.by_state[s] for s in TenantState.values}, attention


def step_duration_rows() -> dict[str, dict[str, Any]]:
    """Per step: how many completed, their total seconds, and how many within each bucket.

    From the step executions that completed (their ``finished_at - started_at`` is the
    ``duration_ms`` of ``tenant.provisioning.step_completed``). One grouped query: each row is
    put in its smallest bucket once (a CASE), counted per (step, bucket), and the cumulative
    ``le`` counts are summed here from at most ``len(STEPS) * (len(buckets) + 1)`` rows.
    """
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    bucket = Case(
        *(
            When(duration__lte=timedelta(seconds=bound), then=V(i))
            for i, bound in enumerate(STEP_DURATION_BUCKETS)
        ),
        default=V(len(STEP_DURATION_BUCKETS)),
        output_field=IntegerField(),
    )
    rows = (
        StepExecution.objects.order_by()
        .filter(status=StepStatus.COMPLETED, started_at__isnull=False, finished_at__isnull=False)
        .annotate(duration=duration)
        .annotate(bucket=bucket)
        .values("name", "bucket")
        .annotate(n=Count("pk"), total=Sum("duration"))
    )
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        step = found.setdefault(
            row["name"], {"per_bucket": [0] * (len(STEP_DURATION_BUCKETS) + 1), "total": 0.0}
        )
        step["per_bucket"][row["bucket"]] += row["n"]
        step["total"] += _seconds(row["total"] or timedelta(0))
    for step in found.values():
        cumulative, running = [], 0
        for n in step["per_bucket"]:
            running += n
            cumulative.append(running)
        step["cumulative"] = cumulative  # the last one is the count (+Inf)
    return found


def step_failures() -> dict[str, int]:
    """Failed tries per step, from ``tenant.provisioning.step_failed`` events."""
    counts = dict.fromkeys(STEPS, 0)
    rows = (
        Event.objects.order_by()
        .filter(type="tenant.provisioning.step_failed")
        .annotate(step=KeyTextTransform("step", "data"))
        .values("step")
        .annotate(n=Count("pk"))
    )
    for row in rows:
        counts[row["step"] or "unknown"] = row["n"]
    return counts


def operations() -> dict[tuple[str, str], int]:
    counts = dict.fromkeys(OPERATION_EVENTS.values(), 0)
    rows = (
        Event.objects.order_by()
        .filter(type__in=list(OPERATION_EVENTS))
        # A decommission waiting for approval records decommission_requested (the contract's
        # four eyes) and again when it runs: count it once, when it runs.
        .exclude(type="tenant.decommission_requested", data__has_key="awaiting_approval")
        .values("type")
        .annotate(n=Count("pk"))
    )
    for row in rows:
        key = OPERATION_EVENTS[row["type"]]
        counts[key] += row["n"]
    return counts


def queued_steps(now: datetime | None = None) -> tuple[int, float, int]:
    """Steps of live runs dispatched and due but not started (waiting for a worker), the
    oldest one's wait in seconds (0 with none), and the re-publishes of lost-looking messages
    ever made. Two aggregate queries that do not grow with history: the first reads the
    ``(status, due_at)`` index's dispatched range, the second a partial index of the steps
    ever re-published (``step_republished_idx``)."""
    now = now or timezone.now()
    row = (
        StepExecution.objects.order_by()
        .filter(
            status=StepStatus.DISPATCHED,
            due_at__lte=now,
            run__status=RunStatus.RUNNING,
            run__compensating=False,
        )
        .aggregate(queued=Count("pk"), oldest=Min("due_at"))
    )
    oldest = row["oldest"]
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    republished = (
        StepExecution.objects.order_by()
        .filter(republished__gt=0)
        .aggregate(n=Sum("republished"))["n"]
    )
    return row["queued"], age, republished or 0


class ControlPlaneCollector(Collector):
    """Reads the database on every ``collect()``: one scrape, ``SCRAPE_QUERIES`` queries."""

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        by_state, needing_attention = tenant_counts()
        tenants = GaugeMetricFamily("controlplane_tenants", "Tenants by state.", labels=["state"])
        for state, n in by_state.items():
            tenants.add_metric([state], n)
        yield tenants

        attention = GaugeMetricFamily(
            "controlplane_tenants_needing_attention",
            "Tenants that need an operator, by condition.",
            labels=["condition"],
        )
        for condition, n in needing_attention.items():
            attention.add_metric([condition], n)
        yield attention

        durations = HistogramMetricFamily(
            "controlplane_step_duration_seconds",
            "Duration of completed provisioning steps (start of the try to completion).",
            labels=["step"],
        )
        rows = step_duration_rows()
        for step in STEPS:
            row = rows.get(step)
            cumulative = row["cumulative"] if row else [0] * (len(STEP_DURATION_BUCKETS) + 1)
            buckets = [(_le(b), cumulative[i]) for i, b in enumerate(STEP_DURATION_BUCKETS)]
            buckets.append(("+Inf", cumulative[-1]))
            durations.add_metric([step], buckets, sum_value=row["total"] if row else 0.0)
        yield durations

        failures = CounterMetricFamily(
            "controlplane_step_failures",
            "Failed tries of provisioning steps (tenant.provisioning.step_failed events).",
            labels=["step"],
        )
        for step, n in step_failures().items():
            failures.add_metric([step], n)
        yield failures

        ops = CounterMetricFamily(
            "controlplane_operations",
            "Operations on tenants by outcome, from the audit events they record.",
            labels=["operation", "outcome"],
        )
        for (operation, outcome), n in operations().items():
            ops.add_metric([operation, outcome], n)
        yield ops

        watchdog = GaugeMetricFamily(
            "controlplane_watchdog_last_run_timestamp_seconds",
            "Unix time at which the watchdog last finished a pass (0: never).",
        )
        last = last_watchdog_pass()
        watchdog.add_metric([], last.timestamp() if last else 0)
        yield watchdog

        refused = CounterMetricFamily(
            "controlplane_logins_refused",
            "Logins refused because a lockout was in force (each one; the lockout itself is "
            "one auth.locked_out event).",
        )
        refused.add_metric([], tally_value(LOGINS_REFUSED))
        yield refused

        consumers = GaugeMetricFamily(
            "controlplane_queue_consumers",
            "Workers that consumed the queue within three watchdog intervals (their own stamps).",
            labels=["queue"],
        )
        for queue, (fresh, _last) in queue_consumers().items():
            consumers.add_metric([queue], fresh)
        yield consumers

        n_queued, oldest, republished = queued_steps()
        queued = GaugeMetricFamily(
            "controlplane_steps_queued",
            "Steps dispatched and due but not yet started by a worker (a backlog is load: "
            "queue wait spends no try).",
        )
        queued.add_metric([], n_queued)
        yield queued
        oldest_family = GaugeMetricFamily(
            "controlplane_oldest_queued_step_seconds",
            "How long the oldest queued step has waited for a worker (0: none queued).",
        )
        oldest_family.add_metric([], round(oldest, 3))
        yield oldest_family
        copies = CounterMetricFamily(
            "controlplane_step_republished",
            "Step messages the watchdog published again for the same try (possibly lost).",
        )
        copies.add_metric([], republished)
        yield copies

        yield from provider_limits()


def provider_limits() -> Iterator[GaugeMetricFamily]:
    """With CONTROLPLANE_PROVIDER_LIMITS set (two more queries): the concurrency slots each
    limited provider kind has in use, across every process, and the steps queued behind a
    limit (``waiting_for``), per kind."""
    limits = admission.limits()
    if not limits:
        return
    in_use = GaugeMetricFamily(
        "controlplane_provider_slots_in_use",
        "Concurrency slots of a limited provider kind held by running steps.",
        labels=["kind"],
    )
    for kind, n in admission.slots_in_use().items():
        in_use.add_metric([kind], n)
    yield in_use
    waiting = GaugeMetricFamily(
        "controlplane_steps_waiting_for_provider",
        "Queued steps waiting for a provider's concurrency or rate limit.",
        labels=["kind"],
    )
    counts = dict.fromkeys(limits, 0)
    rows = (
        StepExecution.objects.order_by()
        .filter(status=StepStatus.DISPATCHED)
        .exclude(waiting_for="")
        .values("name")
        .annotate(n=Count("pk"))
    )
    for row in rows:
        kind = STEP_KIND.get(row["name"])
        if kind in counts:
            counts[kind] += row["n"]
    for kind, n in counts.items():
        waiting.add_metric([kind], n)
    yield waiting


def _le(bound: float) -> str:
    return repr(float(bound))


def _seconds(value: timedelta) -> float:
    return value.total_seconds()


def render() -> bytes:
    """The exposition text. A registry per scrape: nothing is kept between scrapes."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ControlPlaneCollector())
    return generate_latest(registry)


@require_safe
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    from .auth import metrics_access

    refusal = None if settings.CONTROLPLANE_METRICS_PUBLIC else metrics_access(request)
    if refusal is not None:
        return refusal
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
