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

from audit.models import Event
from controlplane.prepared import prepared_cursor
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


class _Maker:
    """Makes the instances of one read: the connection's alias and whether a model has
    ``pre_init``/``post_init`` receivers are asked once a read, not once a row (each costs
    more than making the instance)."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self._plain: dict[type[models.Model], bool] = {}

    def __call__(self, model: type[M], row: dict[str, Any]) -> M:
        """The instance the ORM would have made of this row (``row_to_json`` of the model's
        table)."""
        values = {}
        for column, attname, convert in _columns(model):
            value = row[column]
            values[attname] = convert(value) if convert is not None and value is not None else value
        plain = self._plain.get(model)
        if plain is None:
            plain = self._plain[model] = not (
                pre_init.has_listeners(model) or post_init.has_listeners(model)
            )
        if not plain:
            return model.from_db(self.alias, None, list(values.values()))
        # What ``from_db`` ends with, without ``__init__``: the fields' values in the
        # instance's dict (where the field descriptors, django-fsm's included, read them) and
        # a state that says the row came from this database.
        instance = model.__new__(model)
        state = ModelState()
        state.adding = False
        state.db = self.alias
        instance._state = state
        instance.__dict__.update(values)
        return instance


@cache
def _statement(events: bool, history: bool) -> str:
    tenant, run, step = Tenant._meta, Run._meta, StepExecution._meta
    allocation, finding, event = Allocation._meta, ResourceFinding._meta, Event._meta

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
   FROM {allocation.db_table} a WHERE a.{col(allocation, "tenant")} = t.{col(tenant, "id")}),
  {_events(tenant, event, col) if events else "NULL"},
  {_history(tenant, run, step, col) if history else "NULL, NULL"}
FROM t
"""  # noqa: S608 (table and column names from _meta; the id is a parameter)


def _events(tenant: Any, event: Any, col: Callable[[Any, str], str]) -> str:
    # The timeline's newest events, one more than a page: the extra one says there are older.
    return f"""(SELECT json_agg(e.* ORDER BY e.{col(event, "id")} DESC) FROM (
    SELECT * FROM {event.db_table} WHERE {col(event, "tenant_id")} = t.{col(tenant, "id")}
    ORDER BY {col(event, "id")} DESC LIMIT %(events)s) e)"""  # noqa: S608 (as above)


def _history(tenant: Any, run: Any, step: Any, col: Callable[[Any, str], str]) -> str:
    # Every other run of the tenant, newest first, and their steps.
    others = f"""SELECT * FROM {run.db_table} o WHERE o.{col(run, "tenant")} = t.{col(tenant, "id")}
      AND o.{col(run, "id")} IS DISTINCT FROM (SELECT {col(run, "id")} FROM r)"""  # noqa: S608
    return f"""(SELECT json_agg(o.* ORDER BY o.{col(run, "attempt")} DESC) FROM ({others}) o),
  (SELECT json_agg(s.* ORDER BY s.{col(step, "position")}) FROM {step.db_table} s
   WHERE s.{col(step, "run")} IN (SELECT o.{col(run, "id")} FROM ({others}) o))"""  # noqa: S608


@dataclass
class DetailRows:
    tenant: Tenant  # with ``has_drift``
    run: Run | None
    steps: list[StepExecution]  # each with ``run`` set
    allocations: list[Allocation]  # every one, held and released, oldest first
    # Failed runs that stopped at the step the tenant's last one failed at (the runbook's
    # "failed again at the same step").
    failures: int
    # Asked for (``read_detail``'s ``events``): the newest events, as many as asked.
    events: list[Event] | None = None
    # Asked for (``history``): every other run, newest first, each with its steps in order.
    history: list[tuple[Run, list[StepExecution]]] | None = None


def read_detail(
    tenant_id: uuid.UUID, *, events: int = 0, history: bool = False
) -> DetailRows | None:
    """The detail's rows in one round trip; None when no tenant has this id. With ``events``,
    the tenant's newest ``events`` events too (the console's timeline); with ``history``, its
    other runs and their steps (the console's earlier attempts)."""
    params = {"id": tenant_id, "failed": RunStatus.FAILED.value, "events": events}
    make = _Maker(connection.alias)
    with prepared_cursor() as cursor:
        cursor.execute(_statement(events > 0, history), params)
        found = cursor.fetchone()
    if found is None:
        return None
    tenant_row, has_drift, run_row, step_rows, failures, allocation_rows = found[:6]
    event_rows, history_rows, history_step_rows = found[6:]
    tenant = make(Tenant, tenant_row)
    tenant.has_drift = has_drift
    run = make(Run, run_row) if run_row is not None else None
    steps = [make(StepExecution, row) for row in step_rows or ()]
    for step in steps:
        step.run = run
    allocations = [make(Allocation, row) for row in allocation_rows or ()]
    rows = DetailRows(
        tenant=tenant, run=run, steps=steps, allocations=allocations, failures=failures
    )
    if events > 0:
        rows.events = [make(Event, row) for row in event_rows or ()]
    if history:
        others = [make(Run, row) for row in history_rows or ()]
        by_run: dict[uuid.UUID, list[StepExecution]] = {r.id: [] for r in others}
        for row in history_step_rows or ():
            made = make(StepExecution, row)
            by_run[made.run_id].append(made)
        rows.history = [(r, by_run[r.id]) for r in others]
    return rows
