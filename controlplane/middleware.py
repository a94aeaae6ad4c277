"""Requests carrying a NUL character in a query parameter or a form field are refused at the door.

PostgreSQL text cannot hold NUL, so a NUL that reaches a query is a driver error (a 500), and
every filter, cursor and form field in every door would otherwise need its own check (the
admin's list filters had none). No legitimate input contains one. Pages answer 400 with a
plain sentence; the JSON API answers 422 ``validation_error`` in its usual shape, naming the
parameter.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import BadRequest, RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError

from controlplane.errors import ErrorCode

NUL = "\x00"
MESSAGE = "NUL characters are not allowed."
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def nul_fields(request: HttpRequest) -> list[str]:
    """The names of the query parameters and form fields holding a NUL (in name or value)."""
    found = [
        name or "query"
        for name, values in request.GET.lists()
        if NUL in name or any(NUL in v for v in values)
    ]
    if request.method == "POST" and request.content_type in FORM_TYPES:
        try:
            post = request.POST
        except (RequestDataTooBig, TooManyFieldsSent, MultiPartParserError, BadRequest):
            # The view (or Django's handler) answers these with their own 4xx.
            return found
        found += [
            name or "body"
            for name, values in post.lists()
            if NUL in name or any(NUL in v for v in values)
        ]
    return found


class RefuseNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        fields = nul_fields(request)
        if not fields:
            return self.get_response(request)
        if request.path.startswith("/api/"):
            details = {name.replace(NUL, "\\u0000"): [MESSAGE] for name in fields}
            body = {
                "error": {
                    "code": ErrorCode.VALIDATION_ERROR,
                    "message": MESSAGE,
                    "details": details,
                }
            }
            return JsonResponse(body, status=422)
        return HttpResponseBadRequest(
            f"Bad request: {MESSAGE} Remove them from the address or the form.",
            content_type="text/plain; charset=utf-8",
        )
