from __future__ import annotations

import json
import shutil
from pathlib import Path
from uuid import UUID

from django.conf import settings

from .base import Provider, ProviderError, TenantSpec, parse_uuid


class LocalDirectoryStorage(Provider):
    """A directory per tenant under CONTROLPLANE_DATA_ROOT."""

    kind = "storage"

    @staticmethod
    def _root() -> Path:
        return (Path(settings.CONTROLPLANE_DATA_ROOT) / "tenants").resolve()

    def _path(self, tenant_id: UUID) -> Path:
        return self._root() / str(tenant_id)

    def allocate(self, tenant: TenantSpec) -> str:
        path = self._path(tenant.id)
        try:
            path.mkdir(parents=True, exist_ok=True)
            (path / "tenant.json").write_text(
                json.dumps({"tenant_id": str(tenant.id), "slug": tenant.slug})
            )
        except OSError as exc:
            raise ProviderError(f"could not create {path}: {exc.strerror}") from exc
        return str(path)

    def release(self, tenant_id: UUID, external_id: str) -> None:
        path = Path(external_id)
        if path.parent != self._root():
            raise ProviderError(
                f"refusing to remove {path}: not a tenant directory", permanent=True
            )
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ProviderError(f"could not remove {path}: {exc.strerror}") from exc

    def exists(self, external_id: str) -> bool:
        return Path(external_id).is_dir()

    def lookup(self, tenant_id: UUID) -> str | None:
        path = self._path(tenant_id)
        return str(path) if path.exists() else None

    def inventory(self) -> list[tuple[UUID | None, str]]:
        root = self._root()
        if not root.is_dir():
            return []
        return [(parse_uuid(p.name), str(p)) for p in sorted(root.iterdir())]
