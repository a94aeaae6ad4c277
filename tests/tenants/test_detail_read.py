"""The detail's one statement (tenants.detail_read) makes the instances the ORM would make."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import models

from provisioning.models import Allocation, Run, StepExecution
from tenants.detail_read import read_detail
from tenants.models import Tenant

from ..factories import active_tenant, failed_tenant

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_saga")]


def _fields(instance: models.Model) -> dict[str, Any]:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def _same(made: models.Model, model: type[models.Model]) -> None:
    loaded = model.objects.get(pk=made.pk)
    assert _fields(made) == _fields(loaded)
    assert made._state.adding is False
    assert made._state.db == loaded._state.db


@pytest.mark.parametrize("build", [active_tenant, failed_tenant])
def test_every_row_is_the_instance_the_orm_makes(build: Any) -> None:
    tenant = build()
    rows = read_detail(tenant.id)
    assert rows is not None
    _same(rows.tenant, Tenant)
    assert rows.run is not None
    _same(rows.run, Run)
    assert [s.name for s in rows.steps] == list(
        StepExecution.objects.filter(run=rows.run)
        .order_by("position")
        .values_list("name", flat=True)
    )
    for step in rows.steps:
        _same(step, StepExecution)
        assert step.run is rows.run
    assert rows.allocations, "an active or failed tenant has held something"
    for allocation in rows.allocations:
        _same(allocation, Allocation)


def test_an_instance_it_makes_saves_like_a_loaded_one() -> None:
    tenant = active_tenant()
    rows = read_detail(tenant.id)
    assert rows is not None
    rows.tenant.name = "Renamed through a detail row"
    rows.tenant.save(update_fields=["name"])
    assert Tenant.objects.get(pk=tenant.pk).name == "Renamed through a detail row"
    assert rows.tenant.state == tenant.state  # the FSM field reads its value as loaded


def test_the_consoles_extras_are_what_their_own_queries_read() -> None:
    """The timeline's first page and the earlier attempts, read in the detail's statement,
    are the events and runs the ORM reads (tenants.selectors.tenant_runs)."""
    from audit.models import Event
    from tenants.selectors import tenant_detail, tenant_runs
    from tenants.services import retry_provisioning

    from ..conftest import drive
    from ..factories import ACTOR, reload

    tenant = failed_tenant()
    retry_provisioning(tenant_id=tenant.pk, actor=ACTOR)
    drive(reload(tenant).workflow_id)
    detail = tenant_detail(tenant.pk, events=5, history=True)
    assert detail.run is not None
    newest = Event.objects.filter(tenant_id=tenant.pk).order_by("-id")[:5]
    assert detail.events is not None
    assert [_fields(e) for e in detail.events] == [_fields(e) for e in newest]
    expected = tenant_runs(tenant, except_run=detail.run.id)
    assert detail.history is not None
    assert len(detail.history) == len(expected) == 1
    for got, want in zip(detail.history, expected, strict=True):
        assert _fields(got.run) == _fields(want.run)
        assert got.steps == want.steps
        assert [a.pk for a in got.allocated] == [a.pk for a in want.allocated]
        assert [a.pk for a in got.released] == [a.pk for a in want.released]
    plain = tenant_detail(tenant.pk)
    assert plain.events is None and plain.history is None
