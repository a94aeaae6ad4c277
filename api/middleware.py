"""Treat an empty query parameter as an absent one, for every API endpoint.

``GET /tenants?state=&limit=`` is how many clients write "no filter"; without this the empty
string would be parsed (and refused) as a state or a number.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, QueryDict


class DropEmptyQueryParams:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/") and request.GET:
            kept = QueryDict(mutable=True)
            for key, values in request.GET.lists():
                non_empty = [v for v in values if v.strip() != ""]
                if non_empty:
                    kept.setlist(key, non_empty)
            kept._mutable = False
            request.GET = kept
        return self.get_response(request)
