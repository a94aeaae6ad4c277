"""Providers that misbehave on purpose, named in CONTROLPLANE_PROVIDERS by some tests."""

from __future__ import annotations

from uuid import UUID

from provisioning.providers.base import ProviderError, TenantSpec
from provisioning.providers.identity import DjangoGroupIdentity
from provisioning.providers.storage import LocalDirectoryStorage

HOSTILE = "<script>alert('pwned')</script> & <b>identity refused</b>"
STUCK = '<img src=x onerror="alert(1)"> disk busy'


class HostileIdentity(DjangoGroupIdentity):
    """Fails for good, with markup in its message (which must reach the page escaped)."""

    def allocate(self, tenant: TenantSpec) -> str:
        raise ProviderError(HOSTILE, permanent=True)


class StuckStorage(LocalDirectoryStorage):
    """Allocates fine, never lets go."""

    def release(self, tenant_id: UUID, external_id: str) -> None:
        raise ProviderError(STUCK, permanent=True)
