from __future__ import annotations

from uuid import UUID

from django.db import DatabaseError, connection

from .base import Provider, ProviderError, TenantSpec, parse_uuid


class SchemaDatabase(Provider):
    """A PostgreSQL schema per tenant, in the control plane's own database (a stand-in for a
    database server of the tenant's: real DDL, real rows, released by dropping the schema)."""

    kind = "database"

    @staticmethod
    def schema_name(tenant_id: UUID) -> str:
        # Only hex digits after a fixed prefix: safe to put in SQL as an identifier.
        return f"tenant_{tenant_id.hex}"

    def allocate(self, tenant: TenantSpec) -> str:
        name = self.schema_name(tenant.id)
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{name}"')
                cursor.execute(
                    f'CREATE TABLE IF NOT EXISTS "{name}".tenant_meta '
                    "(key text PRIMARY KEY, value text NOT NULL)"
                )
        except DatabaseError as exc:
            raise ProviderError(f"could not create schema {name}: {exc}") from exc
        return name

    def release(self, tenant_id: UUID, external_id: str) -> None:
        if external_id != self.schema_name(tenant_id):
            raise ProviderError(
                f"refusing to drop {external_id!r}: not this tenant's", permanent=True
            )
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{external_id}" CASCADE')
        except DatabaseError as exc:
            raise ProviderError(f"could not drop schema {external_id}: {exc}") from exc

    def exists(self, external_id: str) -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
                [external_id],
            )
            return cursor.fetchone() is not None

    def lookup(self, tenant_id: UUID) -> str | None:
        name = self.schema_name(tenant_id)
        return name if self.exists(name) else None

    def inventory(self) -> list[tuple[UUID | None, str]]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT schema_name FROM information_schema.schemata "
                "WHERE schema_name LIKE %s ORDER BY schema_name",
                ["tenant\\_%"],
            )
            names = [row[0] for row in cursor.fetchall()]
        return [(parse_uuid(name.removeprefix("tenant_")), name) for name in names]
