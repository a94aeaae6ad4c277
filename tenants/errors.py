"""The one error type every operation raises when it refuses."""

from __future__ import annotations

from typing import Any


class OperationError(Exception):
    """An operation was refused. ``code`` is stable for machines, ``message`` is for people.

    Codes: ``invalid_state`` (409), ``slug_taken`` (409), ``validation_error`` (422),
    ``not_found`` (404), ``permission_denied`` (403), ``approver_is_author`` (403).
    """

    http_status = {
        "invalid_state": 409,
        "slug_taken": 409,
        "validation_error": 422,
        "not_found": 404,
        "permission_denied": 403,
        # The reset could not be completed as things stand; nothing was changed.
        "reset_failed": 409,
        # The approval policy: the author of a request cannot approve it (a second person must).
        "approver_is_author": 403,
    }

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    @property
    def status(self) -> int:
        return self.http_status.get(self.code, 400)

    def __str__(self) -> str:
        return self.message
