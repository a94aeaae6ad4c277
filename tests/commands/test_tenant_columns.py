"""``tenant list`` and ``tenant show`` line their columns up whatever the values' lengths
(issue 22: a 23-character timestamp under a 20-character header, ``compensated`` in a column
10 wide)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from .. import factories as f

pytestmark = pytest.mark.django_db


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command("tenant", *args, stdout=out)
    return out.getvalue().splitlines()


def starts(line: str, words: list[str]) -> list[int]:
    """Where each of ``words`` starts in ``line``, searching left to right."""
    at, found = 0, []
    for word in words:
        at = line.index(word, at)
        found.append(at)
        at += len(word)
    return found


def test_the_list_columns_line_up_under_their_headers(fast_saga):
    f.failed_tenant(slug="a-rather-long-slug-that-pushes-the-columns")
    f.active_tenant(slug="abc")
    header, *rows = run("list")
    columns = starts(header, ["SLUG", "STATE", "CONDITION", "PLAN", "CREATED", "ID"])
    assert len(rows) == 2
    for row in rows:
        slug, state, condition, plan, day, time, utc, tenant_id = row.split()
        assert utc == "UTC"
        created = f"{day} {time} UTC"
        assert starts(row, [slug, state, condition, plan, created, tenant_id]) == columns, row


def test_show_lines_up_steps_held_allocations_and_actions(fast_saga):
    tenant = f.cancelled_tenant(slug="rolled")
    lines = run("show", tenant.slug)
    steps = [
        line
        for line in lines
        if line.startswith("    ")
        and line.split()[0]
        in {
            "validate_request",
            "allocate_storage",
            "allocate_identity",
            "create_database",
            "configure_dns",
            "setup_billing",
            "invite_admin",
            "mark_active",
        }
    ]
    assert len(steps) == 8
    statuses = {line.split()[1] for line in steps}
    assert "compensated" in statuses and "skipped" in statuses
    status_at = {line.index(line.split()[1], len(line.split()[0]) + 4) for line in steps}
    assert len(status_at) == 1, steps  # every status starts in the same column
    assert all(not line.endswith(" ") for line in lines)
