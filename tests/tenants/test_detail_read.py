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
