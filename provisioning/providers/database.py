from __future__ import annotations

import sqlite3
from pathlib import Path
from uuid import UUID

from django.conf import settings
from django.db import DatabaseError, connection

from .base import Provider, ProviderError, TenantSpec, parse_uuid


class SchemaDatabase(Provider):
    """A PostgreSQL schema per tenant; on the embedded default, a SQLite file per tenant."""

    kind = "database"

    @staticmethod
    def schema_name(tenant_id: UUID) -> str:
        # Only hex digits after a fixed prefix: safe to put in SQL as an identifier.
        return f"tenant_{tenant_id.hex}"

    def _sqlite_path(self, tenant_id: UUID) -> Path:
        return Path(settings.CONTROLPLANE_DATA_ROOT) / "databases" / f"{tenant_id}.sqlite3"

    def allocate(self, tenant: TenantSpec) -> str:
        if connection.vendor == "postgresql":
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
        path = self._sqlite_path(tenant.id).resolve()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(path) as db:
                db.execute("CREATE TABLE IF NOT EXISTS tenant_meta (key TEXT PRIMARY KEY, value)")
            db.close()
        except (OSError, sqlite3.Error) as exc:
            raise ProviderError(f"could not create database {path}: {exc}") from exc
        return str(path)

    def release(self, tenant_id: UUID, external_id: str) -> None:
        if connection.vendor == "postgresql":
            if external_id != self.schema_name(tenant_id):
                raise ProviderError(
                    f"refusing to drop {external_id!r}: not this tenant's", permanent=True
                )
            try:
                with connection.cursor() as cursor:
                    cursor.execute(f'DROP SCHEMA IF EXISTS "{external_id}" CASCADE')
            except DatabaseError as exc:
                raise ProviderError(f"could not drop schema {external_id}: {exc}") from exc
            return
        Path(external_id).unlink(missing_ok=True)

    def exists(self, external_id: str) -> bool:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
                    [external_id],
                )
                return cursor.fetchone() is not None
        return Path(external_id).exists()

    def lookup(self, tenant_id: UUID) -> str | None:
        if connection.vendor == "postgresql":
            name = self.schema_name(tenant_id)
            return name if self.exists(name) else None
        path = self._sqlite_path(tenant_id).resolve()
        return str(path) if path.exists() else None

    def inventory(self) -> list[tuple[UUID | None, str]]:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT schema_name FROM information_schema.schemata "
                    "WHERE schema_name LIKE %s ORDER BY schema_name",
                    ["tenant\\_%"],
                )
                names = [row[0] for row in cursor.fetchall()]
            return [(parse_uuid(name.removeprefix("tenant_")), name) for name in names]
        folder = (Path(settings.CONTROLPLANE_DATA_ROOT) / "databases").resolve()
        if not folder.is_dir():
            return []
        return [
            (parse_uuid(path.name.removesuffix(".sqlite3")), str(path))
            for path in sorted(folder.glob("*.sqlite3"))
        ]
