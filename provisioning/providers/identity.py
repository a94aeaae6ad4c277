from __future__ import annotations

from uuid import UUID

from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction

from .base import Provider, TenantSpec


class DjangoGroupIdentity(Provider):
    """A Django group per tenant and an inactive admin user, member of it, for admin_email."""

    kind = "identity"

    @staticmethod
    def group_name(tenant_id: UUID) -> str:
        return f"tenant-{tenant_id}"

    @staticmethod
    def username(tenant_id: UUID) -> str:
        return f"tenant-admin-{tenant_id.hex}"

    def allocate(self, tenant: TenantSpec) -> str:
        name = self.group_name(tenant.id)
        try:
            with transaction.atomic():
                group, _ = Group.objects.get_or_create(name=name)
                user, created = User.objects.get_or_create(
                    username=self.username(tenant.id),
                    defaults={"email": tenant.admin_email, "is_active": False},
                )
                if created:
                    user.set_unusable_password()
                    user.save(update_fields=["password"])
                user.groups.add(group)
        except IntegrityError:
            # Another try made it at the same moment: what exists is what we wanted.
            pass
        return name

    def release(self, tenant_id: UUID, external_id: str) -> None:
        with transaction.atomic():
            User.objects.filter(username=self.username(tenant_id)).delete()
            Group.objects.filter(name=external_id).delete()

    def exists(self, external_id: str) -> bool:
        return Group.objects.filter(name=external_id).exists()
