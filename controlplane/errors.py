"""The one error type every operation raises when it refuses, and every error code.

It lives in ``controlplane`` (below every app, importing none) so the audit feed's filters can
refuse bad input the same way as the tenant list's; ``tenants.errors`` re-exports it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Every error code a door answers with (as Saleor's error-code enums): stable for machines,
    in the API's ``{"error": {"code"}}``, a bulk result's ``code`` and the command's JSON. Code
    names one as ``ErrorCode.INVALID_STATE``; a typo is an ``AttributeError``."""

    # Raised by the domain (``OperationError``).
    INVALID_STATE = "invalid_state"
    SLUG_TAKEN = "slug_taken"
    VALIDATION_ERROR = "validation_error"
    NOT_FOUND = "not_found"
    PERMISSION_DENIED = "permission_denied"
    RESET_FAILED = "reset_failed"
    APPROVER_IS_AUTHOR = "approver_is_author"
    # Decided by the API itself (``api/errors.py``).
    MALFORMED_BODY = "malformed_body"
    NOT_AUTHENTICATED = "not_authenticated"
    CSRF_FAILED = "csrf_failed"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    BODY_TOO_LARGE = "body_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    IDEMPOTENCY_KEY_LIMIT = "idempotency_key_limit"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    INTERNAL_ERROR = "internal_error"
    # Webhook subscriptions (``webhooks/services.py``).
    INVALID_PATTERN = "invalid_pattern"
    INVALID_URL = "invalid_url"
    INVALID_SECRET = "invalid_secret"  # noqa: S105 (a code, not a secret)


class OperationError(Exception):
    """An operation was refused. ``code`` is stable for machines, ``message`` is for people.

    Codes: ``invalid_state`` (409), ``slug_taken`` (409), ``validation_error`` (422),
    ``not_found`` (404), ``permission_denied`` (403), ``approver_is_author`` (403).
    """

    http_status = {
        ErrorCode.INVALID_STATE: 409,
        ErrorCode.SLUG_TAKEN: 409,
        ErrorCode.VALIDATION_ERROR: 422,
        ErrorCode.NOT_FOUND: 404,
        ErrorCode.PERMISSION_DENIED: 403,
        # The reset could not be completed as things stand; nothing was changed.
        ErrorCode.RESET_FAILED: 409,
        # The approval policy: the author of a request cannot approve it (a second person must).
        ErrorCode.APPROVER_IS_AUTHOR: 403,
    }

    def __init__(self, code: ErrorCode, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)  # a code no door knows fails here, not in a client
        self.message = message
        self.details = details

    @property
    def status(self) -> int:
        return self.http_status.get(self.code, 400)

    def __str__(self) -> str:
        return self.message
