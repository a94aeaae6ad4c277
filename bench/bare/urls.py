"""The bare project's one view: one tenant row by primary key, as JSON.

A raw cursor, not a model: a model needs an app, and the floor is Django with nothing of ours.
One query, as the floor of any detail read. The answer is the row (every column of
``tenants_tenant``, about 560 bytes) and ``COPIES`` copies of it, so that it is about the size
of ``GET /api/v1/tenants/{id}``'s (5.4 KB for an active tenant with its steps and allocations):
encoding and sending the bytes cost the floor what they cost ours.
"""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import path

COPIES = 8


def tenant_detail(request: HttpRequest, tenant_id: object) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM tenants_tenant WHERE id = %s", [tenant_id])
        row = cursor.fetchone()
        columns = [c.name for c in cursor.description]
    if row is None:
        return JsonResponse({"detail": "Not found."}, status=404)
    tenant = dict(zip(columns, row, strict=True))
    return JsonResponse({**tenant, "copies": [tenant] * COPIES}, encoder=DjangoJSONEncoder)


urlpatterns = [path("tenants/<uuid:tenant_id>", tenant_detail)]
