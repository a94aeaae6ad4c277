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


class _Remote:
    """A cloud API's client as the worker sees it: the call takes BENCH_PROVIDER_LATENCY
    seconds (0 by default) and does no work in this machine's database or disk. With the
    stand-in providers a step also runs their own statements (a schema, a user, rows), which
    the floor's task does not; with these the saga's own cost is compared with the floor's."""

    kind = ""

    def allocate(self, tenant):
        if settings.BENCH_PROVIDER_LATENCY:
            time.sleep(settings.BENCH_PROVIDER_LATENCY)
        return f"{self.kind}-{tenant.id}"

    def release(self, tenant_id, external_id):
        return None

    def exists(self, external_id):
        return True

    def lookup(self, tenant_id):
        return None

    def inventory(self):
        return []


def _remote(kind: str) -> type:
    return type(f"Remote{kind.title()}", (_Remote,), {"kind": kind})


RemoteStorage = _remote("storage")
RemoteIdentity = _remote("identity")
RemoteDatabase = _remote("database")
RemoteDns = _remote("dns")
RemoteBilling = _remote("billing")
RemoteInvite = _remote("invite")
