from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db import DatabaseError, connection

from tenants.models import PLAN_DATABASE_GB

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
                # Made at its plan's size (a plan change resizes it; provisioning.kinds).
                cursor.execute(
                    f'INSERT INTO "{name}".tenant_meta (key, value) VALUES (%s, %s) '  # noqa: S608
                    "ON CONFLICT (key) DO NOTHING",
                    ["size_gb", str(PLAN_DATABASE_GB.get(tenant.plan, 1))],
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

    # A plan change resizes the database: the size is a row of the schema's tenant_meta (a
    # real server would resize a volume); no row means the size it was created with.

    def read(self, tenant_id: UUID, external_id: str, attribute: str) -> Any:
        self._check(tenant_id, external_id, attribute)
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    f'SELECT value FROM "{external_id}".tenant_meta WHERE key = %s',  # noqa: S608
                    [attribute],
                )
                row = cursor.fetchone()
        except DatabaseError as exc:
            raise ProviderError(f"could not read {external_id}: {exc}") from exc
        return None if row is None else int(row[0])

    def change(self, tenant_id: UUID, external_id: str, attribute: str, value: Any) -> Any:
        before = self.read(tenant_id, external_id, attribute)
        try:
            with connection.cursor() as cursor:
                if value is None:
                    cursor.execute(
                        f'DELETE FROM "{external_id}".tenant_meta WHERE key = %s',  # noqa: S608
                        [attribute],
                    )
                else:
                    cursor.execute(
                        f'INSERT INTO "{external_id}".tenant_meta (key, value) VALUES (%s, %s) '  # noqa: S608
                        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                        [attribute, str(int(value))],
                    )
        except DatabaseError as exc:
            raise ProviderError(f"could not resize {external_id}: {exc}") from exc
        return before

    def _check(self, tenant_id: UUID, external_id: str, attribute: str) -> None:
        if external_id != self.schema_name(tenant_id):
            raise ProviderError(f"{external_id!r} is not this tenant's", permanent=True)
        if attribute != "size_gb":
            raise ProviderError(f"a database has no attribute {attribute!r}", permanent=True)

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
