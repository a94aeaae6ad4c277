from __future__ import annotations

from uuid import UUID

from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction

from .base import Provider, TenantSpec, parse_uuid


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

    def lookup(self, tenant_id: UUID) -> str | None:
        name = self.group_name(tenant_id)
        if (
            Group.objects.filter(name=name).exists()
            or User.objects.filter(username=self.username(tenant_id)).exists()
        ):
            return name
        return None

    def inventory(self) -> list[tuple[UUID | None, str]]:
        found: dict[str, UUID | None] = {}
        for name in Group.objects.filter(name__startswith="tenant-").values_list("name", flat=True):
            found[name] = parse_uuid(name.removeprefix("tenant-"))
        # An admin user whose group is gone is still something this provider made.
        users = User.objects.filter(username__startswith="tenant-admin-")
        for username in users.values_list("username", flat=True):
            tenant_id = parse_uuid(username.removeprefix("tenant-admin-"))
            if tenant_id is not None:
                found.setdefault(self.group_name(tenant_id), tenant_id)
        return [(tenant_id, name) for name, tenant_id in sorted(found.items())]
