"""The fleet bench's providers: cloud APIs as a worker meets them, with limits of their own.

Each call takes a random 50-500 ms (BENCH_FLEET_LATENCY="0.05:0.5") and does no work on this
machine's disk or database. The provider enforces its own limits, as real ones do, in Redis
(shared by every worker process): BENCH_FLEET_PROVIDER_LIMITS, the same JSON shape as
CONTROLPLANE_PROVIDER_LIMITS. A call over a limit is refused with a transient error (a 429),
which would cost the step a try; the bench counts refusals, and with the control plane's limits
set to the provider's, there must be none.
"""

from __future__ import annotations

import json
import os
import random
import time
from functools import cache

import redis
from django.conf import settings

from bench.providers import _Remote
from provisioning.providers import ProviderError


@cache
def _redis() -> redis.Redis:
    url = os.environ.get("BENCH_FLEET_REDIS") or settings.CELERY_BROKER_URL
    url = url.replace("redis+socket://", "unix://").replace("?virtual_host=", "?db=")
    return redis.Redis.from_url(url)


@cache
def _limits() -> dict[str, dict[str, int]]:
    return json.loads(os.environ.get("BENCH_FLEET_PROVIDER_LIMITS", "{}"))


def _latency() -> float:
    low, _, high = os.environ.get("BENCH_FLEET_LATENCY", "0.05:0.5").partition(":")
    return random.uniform(float(low), float(high or low))  # noqa: S311 - a bench's jitter


def counters() -> dict[str, int]:
    """What the providers counted: calls and refusals per kind."""
    r = _redis()
    return {k.decode(): int(v) for k in r.keys("fleet:count:*") if (v := r.get(k)) is not None}


def reset() -> None:
    r = _redis()
    for key in r.keys("fleet:*"):
        r.delete(key)


class _Fleet(_Remote):
    """``exists``, ``lookup`` and ``inventory`` as a remote API the bench cannot list."""

    def allocate(self, tenant):
        r = _redis()
        limit = _limits().get(self.kind, {})
        r.incr(f"fleet:count:{self.kind}:calls")
        inflight_key = f"fleet:inflight:{self.kind}"
        inflight = r.incr(inflight_key)
        try:
            if "concurrency" in limit and inflight > limit["concurrency"]:
                r.incr(f"fleet:count:{self.kind}:refused_concurrency")
                raise ProviderError(f"{self.kind}: 429 too many concurrent calls")
            if "per_minute" in limit:
                window = f"fleet:minute:{self.kind}:{int(time.time() // 60)}"
                started = r.incr(window)
                r.expire(window, 180)
                # A minute's window in the provider's clock; ours counts the last 60 s, which
                # never starts more in any calendar minute.
                if started > limit["per_minute"]:
                    r.incr(f"fleet:count:{self.kind}:refused_rate")
                    raise ProviderError(f"{self.kind}: 429 rate limit")
            time.sleep(_latency())
        finally:
            r.decr(inflight_key)
        return f"{self.kind}-{tenant.id}"

    def release(self, tenant_id, external_id):
        time.sleep(_latency() / 5)


def _fleet(kind: str) -> type:
    return type(f"Fleet{kind.title()}", (_Fleet,), {"kind": kind})


FleetStorage = _fleet("storage")
FleetIdentity = _fleet("identity")
FleetDatabase = _fleet("database")
FleetDns = _fleet("dns")
FleetBilling = _fleet("billing")
FleetInvite = _fleet("invite")
