from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID


class ProviderError(Exception):
    """A provider could not do its work.

    ``permanent`` says whether trying again can help: a permanent failure fails the step at
    once and compensation starts; a transient one is tried again with backoff.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class TenantSpec:
    """What a provider may know of a tenant: a copy, never the locked row."""

    id: UUID
    slug: str
    name: str
    plan: str
    admin_email: str


class Provider:
    """One allocation kind. Every method is idempotent.

    ``allocate`` returns the ``external_id`` naming what it made; asked again for the same
    tenant it returns the same thing without making a second one. ``release`` of something
    already gone succeeds. ``lookup`` finds what exists for a tenant without its
    ``external_id`` (how an allocation intent is released when its worker died before the
    answer was recorded), and ``inventory`` lists everything the provider holds for the
    control plane (what ``manage.py reconcile`` compares with the ledger).
    """

    kind: str = ""

    def allocate(self, tenant: TenantSpec) -> str:
        raise NotImplementedError

    def release(self, tenant_id: UUID, external_id: str) -> None:
        raise NotImplementedError

    def exists(self, external_id: str) -> bool:
        """Whether the thing named still exists (for checks and tests)."""
        raise NotImplementedError

    def lookup(self, tenant_id: UUID) -> str | None:
        """The ``external_id`` of what exists for this tenant, or None."""
        raise NotImplementedError

    def read(self, tenant_id: UUID, external_id: str, attribute: str) -> Any:
        """The current value of a changeable attribute of what ``external_id`` names (None:
        never set, the default it was made with)."""
        raise ProviderError(f"{self.kind} has no attribute {attribute!r}", permanent=True)

    def change(self, tenant_id: UUID, external_id: str, attribute: str, value: Any) -> Any:
        """Set ``attribute`` to ``value`` (None: back to the default) and return the value it
        had. Idempotent: asked again, it changes nothing more."""
        raise ProviderError(f"{self.kind} cannot change {attribute!r}", permanent=True)

    def inventory(self) -> Iterable[tuple[UUID | None, str]]:
        """Every resource this provider holds for the control plane, as (tenant id or None
        when it cannot be told, external_id)."""
        raise NotImplementedError


def parse_uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None
