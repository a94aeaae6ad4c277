"""The NinjaAPI the views register on, with two API-wide rules that no endpoint repeats.

- A query parameter is given once. Django's ``QueryDict`` keeps every value of a repeated key and
  ninja silently takes the last one, so ``?slug=a&slug=b`` used to answer as if asked for ``b``.
  No parameter of this API is a list, so a key repeated in the query string is refused with 422
  naming it, on every endpoint that takes query parameters (a list parameter added later would
  stay a list: ninja names those to the parser). Endpoints without query parameters read none.
- An optional request body is documented the way client generators expect: ``requestBody``
  with ``required: false`` and the body's own object schema. Declare it ``payload: X =
  OptionalBody`` (not ``X | None = None``: that accepts a JSON ``null`` and is documented as
  ``anyOf: [X, null]``, which generators turn into a client that cannot send "no body"). Ninja
  wraps the ``Body(None)`` default in ``allOf: [X]``; the document is unwrapped here, once.
"""

from __future__ import annotations

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

    def get_openapi_schema(
        self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None
    ) -> OpenAPISchema:
        document = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        plain_optional_bodies(document)
        return document
