"""Stand-ins for outside services (DNS, billing, invitations): each keeps its own table.

A real deployment replaces them with clients of the real services; their contract is the
same: idempotent per tenant, the record's id as ``external_id``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db import IntegrityError, models, transaction

from ..models import AdminInvite, BillingAccount, DnsRecord
from .base import Provider, ProviderError, TenantSpec


class _RecordProvider(Provider):
    model: type[models.Model]

    def fields(self, tenant: TenantSpec) -> dict[str, str]:
        raise NotImplementedError

    def allocate(self, tenant: TenantSpec) -> str:
        try:
            with transaction.atomic():
                record, _ = self.model.objects.get_or_create(
                    tenant_id=tenant.id, defaults=self.fields(tenant)
                )
        except IntegrityError:
            record = self.model.objects.get(tenant_id=tenant.id)
        return str(record.pk)

    def release(self, tenant_id: UUID, external_id: str) -> None:
        self.model.objects.filter(pk=int(external_id), tenant_id=tenant_id).delete()

    def exists(self, external_id: str) -> bool:
        return self.model.objects.filter(pk=int(external_id)).exists()

    def lookup(self, tenant_id: UUID) -> str | None:
        pk = self.model.objects.filter(tenant_id=tenant_id).values_list("pk", flat=True).first()
        return None if pk is None else str(pk)

    def inventory(self) -> list[tuple[UUID | None, str]]:
        rows = self.model.objects.order_by("pk").values_list("tenant_id", "pk")
        return [(tenant_id, str(pk)) for tenant_id, pk in rows]


class DnsRecords(_RecordProvider):
    kind = "dns"
    model = DnsRecord

    def fields(self, tenant: TenantSpec) -> dict[str, str]:
        return {"hostname": f"{tenant.slug}.tenants.example.net", "target": "ingress.internal"}


class BillingRecords(_RecordProvider):
    kind = "billing"
    model = BillingAccount

    def fields(self, tenant: TenantSpec) -> dict[str, str]:
        return {"plan": tenant.plan}

    def _account(self, tenant_id: UUID, external_id: str, attribute: str) -> Any:
        if attribute != "plan":
            raise ProviderError(f"a billing account has no attribute {attribute!r}", permanent=True)
        account = BillingAccount.objects.filter(pk=int(external_id), tenant_id=tenant_id).first()
        if account is None:
            raise ProviderError(f"billing account {external_id} is gone", permanent=True)
        return account

    def read(self, tenant_id: UUID, external_id: str, attribute: str) -> Any:
        return self._account(tenant_id, external_id, attribute).plan

    def change(self, tenant_id: UUID, external_id: str, attribute: str, value: Any) -> Any:
        before = self._account(tenant_id, external_id, attribute).plan
        BillingAccount.objects.filter(pk=int(external_id), tenant_id=tenant_id).update(
            plan=str(value)
        )
        return before


class InviteRecords(_RecordProvider):
    kind = "invite"
    model = AdminInvite

    def fields(self, tenant: TenantSpec) -> dict[str, str]:
        return {"email": tenant.admin_email}
