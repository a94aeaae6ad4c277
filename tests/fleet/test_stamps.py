"""One format for people, one for machines, in every door (issue 22): the console, the admin
and ``audit tail`` write ``2026-12-05 19:04:05 UTC``; the JSON Lines and CSV exports and
``audit tail --json`` write ISO 8601 in UTC with a ``Z``, to the millisecond."""

from __future__ import annotations

import csv
import io
import json
import re
from io import StringIO

import pytest
from django.core.management import call_command

from audit.models import Event
from controlplane.formats import iso_text, stamp_text

from .. import factories as f

pytestmark = pytest.mark.django_db

PEOPLE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
MACHINES = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_the_two_helpers(fast_saga) -> None:
    from datetime import UTC, datetime, timedelta, timezone

    moment = datetime(2026, 12, 5, 20, 4, 5, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert stamp_text(moment) == "2026-12-05 19:04:05 UTC"
    assert iso_text(moment) == "2026-12-05T19:04:05.123Z"
    # A whole second still has its milliseconds: every line of an export the same shape.
    assert iso_text(datetime(2026, 12, 5, 19, 4, 5, tzinfo=UTC)) == "2026-12-05T19:04:05.000Z"


def test_the_console_exports_write_iso_8601_with_z(client, viewer, fast_saga) -> None:
    f.active_tenant(slug="stamped")
    client.force_login(viewer)
    lines = b"".join(client.get("/audit/?format=jsonl").streaming_content).decode().splitlines()
    assert lines and all(MACHINES.match(json.loads(line)["occurred_at"]) for line in lines)
    body = b"".join(client.get("/audit/?format=csv").streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert rows and all(MACHINES.match(row["occurred_at"]) for row in rows)
    assert "+00:00" not in body


def test_audit_tail_writes_the_format_for_people_and_json_for_machines(fast_saga) -> None:
    f.active_tenant(slug="tailed")
    out = StringIO()
    call_command("audit", "tail", "--limit", "3", stdout=out)
    for line in out.getvalue().splitlines():
        assert PEOPLE.match(line[:23]), line
    out = StringIO()
    call_command("audit", "tail", "--limit", "3", "--json", stdout=out)
    for line in out.getvalue().splitlines():
        assert MACHINES.match(json.loads(line)["occurred_at"]), line


def test_the_admin_writes_whole_moments_in_the_format_for_people(client, admin_user, fast_saga):
    tenant = f.active_tenant(slug="admin-stamped")
    client.force_login(admin_user)
    body = client.get("/admin/audit/event/").content.decode()
    cells = re.findall(r'<td class="field-when">([^<]*)</td>', body)
    assert cells and all(PEOPLE.match(c) for c in cells), cells[:3]
    page = client.get(f"/admin/tenants/tenant/{tenant.pk}/change/").content.decode()
    cells = re.findall(r'<td class="when">([^<]*)</td>', page)
    assert cells and all(PEOPLE.match(c) for c in cells), cells[:3]
    assert Event.objects.filter(tenant_id=tenant.pk).exists()
