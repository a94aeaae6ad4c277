"""The one error type every operation raises when it refuses (defined in ``controlplane.errors``,
below every app, so the audit feed's filters raise it too)."""

from __future__ import annotations

from controlplane.errors import ErrorCode, OperationError

__all__ = ["ErrorCode", "OperationError"]
