"""Every error the API gives, in one shape: ``{"error": {"code", "message", "details"}}``.

The domain's ``OperationError`` carries its own code and status; everything ninja or Django
raises is mapped here once. The catch-all at the bottom is a last resort that logs: the tests
show that no input reaches it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from tenants.errors import ErrorCode, OperationError

logger = logging.getLogger(__name__)

HTTP_CODES = {
    400: ErrorCode.MALFORMED_BODY,
    401: ErrorCode.NOT_AUTHENTICATED,
    403: ErrorCode.PERMISSION_DENIED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.BODY_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.VALIDATION_ERROR,
    500: ErrorCode.INTERNAL_ERROR,
}


class ApiError(Exception):
    """An error the API itself decides (bad cursor, idempotency conflicts, body too large)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def json_error(status: int, code: str, message: str, details: Any = None) -> JsonResponse:
    """For answers given outside ninja (unknown paths, wrong methods)."""
    return JsonResponse(error_body(code, message, details), status=status)


def _is_union_tag(part: str) -> bool:
    # Pydantic names the member of a union an error is about ("dict[str,str]",
    # "function-after[_storable(), str]"); it is no field of the body.
    return "[" in part or "(" in part


def clean_message(message: str) -> str:
    """Pydantic's message without its own bookkeeping: a validator's ValueError comes as
    "Value error, <what we said>" (and an assertion as "Assertion failed, ...")."""
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def validation_details(errors: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Pydantic's error list as ``{field: [messages]}``, the shape the services use.

    A location is ``(source, param, *field path)`` for bodies and ``(source, name)`` for
    query parameters; the field is named by its path inside the body, or the parameter. A value
    that fits none of a union's members gets one message naming what each would take.
    """
    details: dict[str, list[str]] = {}
    unions: dict[str, list[str]] = {}
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        tagged = any(_is_union_tag(p) for p in loc)
        loc = [p for p in loc if not _is_union_tag(p)]
        source = loc[0] if loc else ""
        if source == "body":
            path = loc[2:]
            field = ".".join(path) if path else "body"
        else:
            field = ".".join(loc[1:]) or source or "request"
        message = clean_message(err.get("msg", "Invalid value."))
        if err.get("type") == "extra_forbidden":
            message = "Unknown field." if source == "body" else "Unknown query parameter."
        elif err.get("type") == "missing" and field == "body":
            message = "A JSON object body is required."
        if tagged:
            unions.setdefault(field, []).append(message.removeprefix("Input should be "))
            continue
        details.setdefault(field, []).append(message)
    for field, wants in unions.items():
        details.setdefault(field, []).append(
            "Input should be " + " or ".join(dict.fromkeys(wants)) + "."
        )
    return details


def size_text(size: int) -> str:
    """``64 KiB``, ``1 MiB``, or bytes when it is not a whole number of either."""
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def too_large_message() -> str:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return f"The body is larger than {size_text(limit)}; send at most that." if limit else ""


def install(api: NinjaAPI) -> None:
    def respond(request: HttpRequest, status: int, body: dict[str, Any]) -> HttpResponse:
        response = api.create_response(request, body, status=status)
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response

    @api.exception_handler(OperationError)
    def operation_error(request: HttpRequest, exc: OperationError) -> HttpResponse:
        status = exc.status
        return respond(request, status, error_body(exc.code, exc.message, exc.details))

    @api.exception_handler(ApiError)
    def api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
        return respond(request, exc.status, error_body(exc.code, exc.message, exc.details))

    @api.exception_handler(NinjaValidationError)
    def validation_error(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
        details = validation_details(exc.errors)
        return respond(
            request,
            422,
            error_body(ErrorCode.VALIDATION_ERROR, "Some fields are not valid.", details),
        )

    @api.exception_handler(AuthenticationError)
    def auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        message = exc.message
        if message == "Unauthorized":
            message = "Authentication required: send Authorization: Bearer <token>."
        return respond(request, 401, error_body(ErrorCode.NOT_AUTHENTICATED, message))

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        status = exc.status_code
        code = HTTP_CODES.get(status, "error")
        message = exc.message
        if status == 400:
            message = "The request body is not valid JSON."
        return respond(request, status, error_body(code, message))

    @api.exception_handler(RequestDataTooBig)
    def too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        # Django's message names its setting; the caller needs the limit.
        return respond(request, 413, error_body(ErrorCode.BODY_TOO_LARGE, too_large_message()))

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return respond(request, 404, error_body(ErrorCode.NOT_FOUND, "Not found."))

    @api.exception_handler(Exception)
    def last_resort(request: HttpRequest, exc: Exception) -> HttpResponse:
        # Nothing should get here; if something does, log it whole and still answer JSON.
        logger.exception("unhandled error in %s %s", request.method, request.path)
        return respond(
            request, 500, error_body(ErrorCode.INTERNAL_ERROR, "Something went wrong on our side.")
        )
