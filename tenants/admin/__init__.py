"""The Django admin door to tenants, one module per concept (``tenant``, ``approvals``,
``schedules``); why the door is built as it is stands in ``tenant``."""

from __future__ import annotations

# Each module registers its admin with the site when imported.
from . import approvals, schedules, tenant  # noqa: F401

__all__: list[str] = []
