"""The NinjaAPI the views register on, with two API-wide rules that no endpoint repeats.

- A query parameter is given once. Django's ``QueryDict`` keeps every value of a repeated key and
  ninja silently takes the last one, so ``?slug=a&slug=b`` used to answer as if asked for ``b``.
  No parameter of this API is a list, so a key repeated in the query string is refused with 422
  naming it, on every endpoint that takes query parameters (a list parameter added later would
  stay a list: ninja names those to the parser). Endpoints without query parameters read none.
- A query parameter the endpoint does not take is refused with 422 naming it (``?colour=red``
  or a typo'd filter used to be ignored and the whole list answered): ``refuse_unknown_query``,
  one decorator over every operation, after authentication and the known parameters' checks.
- A request body is JSON, said so: a body sent as ``text/plain`` (or any type but
  ``application/json``) is refused with 415 in the error JSON (``require_json_body``), whatever
  it holds, instead of being read as JSON anyway.
- An optional request body is documented the way client generators expect: ``requestBody``
  with ``required: false`` and the body's own object schema. Declare it ``payload: X =
  OptionalBody`` (not ``X | None = None``: that accepts a JSON ``null`` and is documented as
  ``anyOf: [X, null]``, which generators turn into a client that cannot send "no body"). Ninja
  wraps the ``Body(None)`` default in ``allOf: [X]``; the document is unwrapped here, once.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.utils.datastructures import MultiValueDict
from ninja import Body, NinjaAPI
from ninja.errors import ValidationError
from ninja.openapi.schema import OpenAPISchema
from ninja.parser import Parser
from ninja.renderers import JSONRenderer
from ninja.responses import NinjaJSONEncoder

from controlplane.formats import iso_text
from tenants.errors import ErrorCode

from .errors import json_error

# No body, or the body's object; a JSON null is refused (422) like any other non-object.
OptionalBody: Any = Body(None)


class SingleValuedQueryParser(Parser):
    def parse_querydict(
        self, data: MultiValueDict[str, Any], list_fields: list[str], request: HttpRequest
    ) -> dict[str, Any]:
        source = "query" if data is request.GET else "form"
        repeated = [
            {
                "loc": (source, key),
                "msg": f"Given {len(values)} times; give it once.",
                "type": "repeated_parameter",
            }
            for key, values in data.lists()
            if len(values) > 1 and key not in list_fields
        ]
        if repeated:
            raise ValidationError(repeated)
        return super().parse_querydict(data, list_fields, request)


def plain_optional_bodies(document: dict[str, Any]) -> dict[str, Any]:
    """``requestBody.required: false`` bodies get their schema unwrapped in place."""
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if not body or body.get("required", False):
                continue
            for media in body.get("content", {}).values():
                media["schema"] = _unwrap(media.get("schema", {}))
    return document


def _unwrap(schema: dict[str, Any]) -> dict[str, Any]:
    parts = schema.get("allOf")
    if isinstance(parts, list) and len(parts) == 1 and set(schema) == {"allOf"}:
        return parts[0]  # type: ignore[no-any-return]
    return schema


def _query_names(view: Callable[..., Any]) -> frozenset[str]:
    """The names a view's parameters may be given by (their aliases too); the path's and the
    body's are among them, which is harmless: only a name nobody declared is refused."""
    names: set[str] = set()
    for param in inspect.signature(view).parameters.values():
        names.add(param.name)
        alias = getattr(param.default, "alias", None)
        if isinstance(alias, str):
            names.add(alias)
    return frozenset(names)


def refuse_unknown_query(view: Callable[..., Any]) -> Callable[..., Any]:
    """An operation's view that refuses query parameters it does not declare (422, each named:
    "Unknown query parameter."), so a typo'd filter is an error, not the unfiltered list."""
    known = _query_names(view)

    @functools.wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        unknown = [key for key in request.GET if key not in known]
        if unknown:
            raise ValidationError(
                [
                    {"loc": ("query", key), "msg": "Unknown query parameter.", "type": "unknown"}
                    for key in unknown
                ]
            )
        return view(request, *args, **kwargs)

    return checked


BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def require_json_body(run: Callable[..., Any]) -> Callable[..., Any]:
    """An operation that answers 415 to a body that is not declared JSON (before anything else
    reads it: a ``text/plain`` body used to be parsed as JSON all the same)."""

    @functools.wraps(run)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        # The length the client declared, not request.body: reading a body over the size
        # limit raises here, outside the API's error handling (which answers it with 413).
        sent = request.META.get("CONTENT_LENGTH") or "0"
        has_body = not sent.isdigit() or int(sent) > 0
        if request.method in BODY_METHODS and has_body and not _is_json(request.content_type or ""):
            given = request.content_type or "none"
            return json_error(
                415,
                ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                f"Send the body as JSON with Content-Type: application/json (it was {given}).",
            )
        return run(request, *args, **kwargs)

    return checked


class ApiJSONEncoder(NinjaJSONEncoder):
    """Ninja's encoder with every datetime in the one machine format (``iso_text``: ISO 8601,
    UTC, ``Z``, milliseconds), the same as the console's JSON Lines and CSV exports."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime) and o.tzinfo is not None:
            return iso_text(o)
        return super().default(o)


class ApiRenderer(JSONRenderer):
    encoder_class = ApiJSONEncoder


class ControlPlaneAPI(NinjaAPI):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("parser", SingleValuedQueryParser())
        kwargs.setdefault("renderer", ApiRenderer())
        super().__init__(**kwargs)
        self.add_decorator(require_json_body, mode="view")
        self.add_decorator(refuse_unknown_query, mode="operation")

    def get_openapi_schema(
        self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None
    ) -> OpenAPISchema:
        document = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        plain_optional_bodies(document)
        return document
