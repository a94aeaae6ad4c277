"""Providers for tests that stand for an outside service misbehaving."""

from __future__ import annotations

from uuid import UUID

from provisioning.providers import ProviderError
from provisioning.providers.records import BillingRecords, DnsRecords


class DnsThatWillNotRelease(DnsRecords):
    """A DNS service whose delete call keeps failing (the record stays, as it would)."""

    def release(self, tenant_id: UUID, external_id: str) -> None:
        raise ProviderError("DNS API answered 503 to the delete")


class BillingThatWillNotChange(BillingRecords):
    """A billing service whose plan-change call keeps failing (the account keeps its plan)."""

    def change(self, tenant_id: UUID, external_id: str, attribute: str, value: object) -> object:
        raise ProviderError("billing API answered 503 to the plan change")
