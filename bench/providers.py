"""Bench-only providers: the product's, each allocation taking BENCH_PROVIDER_LATENCY seconds
first (network-bound, as a real cloud API is)."""

from __future__ import annotations

import time

from django.conf import settings
from django.utils.module_loading import import_string

from controlplane import settings as product


def _slow(kind: str) -> type:
    base = import_string(product.CONTROLPLANE_PROVIDERS[kind])

    def allocate(self, tenant):
        time.sleep(settings.BENCH_PROVIDER_LATENCY)
        return base.allocate(self, tenant)

    return type(f"Slow{kind.title()}", (base,), {"allocate": allocate})


SlowStorage = _slow("storage")
SlowIdentity = _slow("identity")
SlowDatabase = _slow("database")
SlowDns = _slow("dns")
SlowBilling = _slow("billing")
SlowInvite = _slow("invite")
