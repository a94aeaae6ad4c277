"""``GET /tenants/{id}`` skips ninja's response validation (the fleet's most frequent read spent
a fifth of its time validating a shape it builds itself): its answer must be byte for byte what
validating it against ``TenantDetailOut`` and rendering it would give, in every situation an
operator meets, and the OpenAPI document still describes it."""

from __future__ import annotations

import json
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from api.base import ApiJSONEncoder
from api.schemas import TenantDetailOut
from api.views import api
from tenants.selectors import tenant_detail
from tenants.serializers import detail_dict
from tests.factories import SITUATIONS

pytestmark = pytest.mark.django_db


def through_the_schema(data: dict[str, Any]) -> bytes:
    """What ninja answers for ``data`` with TenantDetailOut as the response schema."""
    validated = TenantDetailOut.model_validate(data).model_dump()
    return json.dumps(validated, cls=ApiJSONEncoder).encode()


@pytest.mark.parametrize("situation", sorted(SITUATIONS))
def test_the_detail_is_what_its_schema_renders(situation, as_viewer, viewer, fast_saga, settings):
    tenant = SITUATIONS[situation](settings)
    # One moment for both reads: the heartbeat's age and a queued step's wait are read off it.
    with time_machine.travel(timezone.now(), tick=False):
        response = as_viewer.get(f"/tenants/{tenant.id}")
        expected = through_the_schema(detail_dict(tenant_detail(tenant.id, user=viewer)))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(response.content) == json.loads(expected)
    assert response.content == expected


def test_the_openapi_document_still_describes_the_detail():
    document = api.get_openapi_schema()
    answer = document["paths"]["/api/v1/tenants/{tenant_id}"]["get"]["responses"][200]
    assert answer["content"]["application/json"]["schema"]["$ref"].endswith("/TenantDetailOut")
