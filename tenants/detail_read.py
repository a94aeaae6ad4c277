"""A tenant's detail read in one statement: the tenant (with whether reconciliation has open
findings about it), the run its detail shows, that run's steps, how many runs failed at the
step its last one failed at, and every allocation the tenant has held, as model instances.

The ORM needed three queries for this, and most of their time was Django building the queries
and the instances, not PostgreSQL running them (docs/performance.md, "What bounds the reads").
Here the statement is written once from the models' ``_meta`` (their tables and columns, so a
renamed field cannot drift from it), PostgreSQL returns each row as JSON, and each row becomes
an instance with each column converted as its field would: the instance ``Model.from_db`` (what
the ORM itself calls) would make, made without running ``Model.__init__`` for every row when no
``pre_init``/``post_init`` receiver listens (``Model.__init__``'s per-field ``setattr`` loop was a
fifth of the API's detail read in process).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from django.db import connection, models
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init

from provisioning.models import Allocation, ResourceFinding, Run, RunStatus, StepExecution

from .models import Tenant

M = TypeVar("M", bound=models.Model)


def _converter(field: models.Field) -> Callable[[Any], Any] | None:
    """How a column of ``row_to_json`` becomes the field's Python value (None: as it is)."""
    target = field.target_field if isinstance(field, models.ForeignKey) else field
    if isinstance(target, models.DateTimeField):
        return datetime.fromisoformat
    if isinstance(target, models.UUIDField):
        return uuid.UUID
    return None


@cache
def _columns(
    model: type[models.Model],
) -> tuple[tuple[str, str, Callable[[Any], Any] | None], ...]:
    return tuple((f.column, f.attname, _converter(f)) for f in model._meta.concrete_fields)


def from_json(model: type[M], row: dict[str, Any]) -> M:
    """The instance the ORM would have made of this row (``row_to_json`` of the model's table)."""
    values = {}
    for column, attname, convert in _columns(model):
        value = row[column]
        values[attname] = convert(value) if convert is not None and value is not None else value
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return model.from_db(connection.alias, None, list(values.values()))
    # What ``from_db`` ends with, without ``__init__``: the fields' values in the instance's
    # dict (where the field descriptors, django-fsm's included, read them) and a state that
    # says the row came from this database.
    instance = model.__new__(model)
    state = ModelState()
    state.adding = False
    state.db = connection.alias
    instance._state = state
    instance.__dict__.update(values)
    return instance


@cache
def _statement() -> str:
    tenant, run, step = Tenant._meta, Run._meta, StepExecution._meta
    allocation, finding = Allocation._meta, ResourceFinding._meta

    def col(meta: Any, name: str) -> str:
        return meta.get_field(name).column

    # The handle's run, else the latest attempt: as the console and the API have always shown.
    return f"""
WITH t AS (SELECT * FROM {tenant.db_table} WHERE {col(tenant, "id")} = %(id)s),
r AS (
  SELECT * FROM {run.db_table} WHERE {col(run, "id")} = COALESCE(
    (SELECT {col(tenant, "workflow_id")} FROM t),
    (SELECT {col(run, "id")} FROM {run.db_table} WHERE {col(run, "tenant")} = %(id)s
     ORDER BY {col(run, "attempt")} DESC LIMIT 1)
  )
)
SELECT
  row_to_json(t.*),
  EXISTS (SELECT 1 FROM {finding.db_table} f
          WHERE f.{col(finding, "tenant_id")} = t.{col(tenant, "id")}
            AND f.{col(finding, "resolved_at")} IS NULL),
  (SELECT row_to_json(r.*) FROM r),
  (SELECT json_agg(s.* ORDER BY s.{col(step, "position")}) FROM {step.db_table} s
   WHERE s.{col(step, "run")} = (SELECT {col(run, "id")} FROM r)),
  (SELECT count(*) FROM {run.db_table} f
   WHERE f.{col(run, "tenant")} = t.{col(tenant, "id")} AND f.{col(run, "status")} = %(failed)s
     AND f.{col(run, "failed_step")} = t.{col(tenant, "failed_activity")}),
  (SELECT json_agg(a.* ORDER BY a.{col(allocation, "allocated_at")}, a.{col(allocation, "id")})
   FROM {allocation.db_table} a WHERE a.{col(allocation, "tenant")} = t.{col(tenant, "id")})
FROM t
"""  # noqa: S608 (table and column names from _meta; the id is a parameter)


@dataclass
class DetailRows:
    tenant: Tenant  # with ``has_drift``
    run: Run | None
    steps: list[StepExecution]  # each with ``run`` set
    allocations: list[Allocation]  # every one, held and released, oldest first
    # Failed runs that stopped at the step the tenant's last one failed at (the runbook's
    # "failed again at the same step").
    failures: int


def read_detail(tenant_id: uuid.UUID) -> DetailRows | None:
    """The detail's rows in one round trip; None when no tenant has this id."""
    with connection.cursor() as cursor:
        cursor.execute(_statement(), {"id": tenant_id, "failed": RunStatus.FAILED.value})
        found = cursor.fetchone()
    if found is None:
        return None
    tenant_row, has_drift, run_row, step_rows, failures, allocation_rows = found
    tenant = from_json(Tenant, tenant_row)
    tenant.has_drift = has_drift
    run = from_json(Run, run_row) if run_row is not None else None
    steps = [from_json(StepExecution, row) for row in step_rows or ()]
    for step in steps:
        step.run = run
    allocations = [from_json(Allocation, row) for row in allocation_rows or ()]
    return DetailRows(
        tenant=tenant, run=run, steps=steps, allocations=allocations, failures=failures
    )
