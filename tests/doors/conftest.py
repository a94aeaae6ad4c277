"""Tenants in every situation, built as the console's tests build them."""

from __future__ import annotations

from ..console.conftest import make_state

__all__ = ["make_state"]
