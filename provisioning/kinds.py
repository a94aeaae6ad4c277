"""The kinds of saga a run can be, as tables of steps: ``provision`` and ``plan_change``.

``provisioning.saga`` (claim, work, record, finish), ``provisioning.compensation`` (rolling
back, settling) and ``provisioning.watchdog`` (fencing, stall messages) never name a kind's
steps: they look them up here. A step does one of four things, read from these tables:

- *allocate* (``allocates``): ask a provider for a new resource of a kind; the ledger gets an
  ``AllocationIntent`` before the call and an ``Allocation`` after it. Rolled back by
  releasing every allocation the tenant holds, newest first (``rollback = "release"``).
- *change* (``changes``): set an attribute of an allocation the tenant already holds (a
  database's size, a billing account's plan); the ledger gets an ``AllocationChange`` intent
  before the call, marked applied after it. Rolled back by reverting the run's own changes,
  newest first (``rollback = "revert"``).
- *check* (``checks``): read-only validation, nothing to roll back.
- the last step, which settles the tenant (``provisioning.saga.FINISH[kind]``).

Step names are unique across kinds, so the maps every step consults (``STEP_ALLOCATES``,
``STEP_CHANGES``) are merged once here and cost a step nothing to read. A third kind (a region
move, say) is a new ``RunKind`` row, its step names, its ``Change`` rows and provider methods,
and its entries in ``FINISH`` / ``SETTLE``; see docs/architecture.md ("Saga kinds").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audit.events import EventType
from tenants.models import PLAN_DATABASE_GB, TenantState

from .models import PLAN_CHANGE_STEPS, STEP_KIND, STEPS, RunKind


@dataclass(frozen=True)
class Change:
    """A step that sets ``attribute`` of the tenant's held allocation of ``kind`` to
    ``value(params)`` (its provider's ``change``), recorded as an ``AllocationChange``."""

    kind: str
    attribute: str
    value: Callable[[dict[str, Any]], Any]  # the run's params -> the new value
    before: Callable[[dict[str, Any]], Any]  # the run's params -> the value it replaces
    label: str  # what changes, in words ("database size")
    shown: Callable[[Any], str] = str  # a value, in words ("10 GB")


@dataclass(frozen=True)
class Kind:
    name: str
    steps: tuple[str, ...]
    working_state: str  # the tenant's state while a live run of this kind works
    rollback: str  # "release" (everything held) or "revert" (the run's own changes)
    started_event: str  # what its start records (an ``EventType``)
    allocates: dict[str, str] = field(default_factory=dict)
    changes: dict[str, Change] = field(default_factory=dict)
    checks: tuple[str, ...] = ()
    # What an operator reads when a run of this kind is stalled, and what gets it out.
    stalled_advice: str = "Reset, then retry."


def _gb(value: Any) -> str:
    return f"{value} GB"


PROVISION = Kind(
    name=RunKind.PROVISION,
    steps=STEPS,
    working_state=TenantState.PROVISIONING,
    rollback="release",
    started_event=EventType.PROVISIONING_STARTED,
    allocates=STEP_KIND,
    checks=("validate_request",),
)

PLAN_CHANGE = Kind(
    name=RunKind.PLAN_CHANGE,
    steps=PLAN_CHANGE_STEPS,
    working_state=TenantState.UPDATING,
    rollback="revert",
    started_event=EventType.PLAN_CHANGE_STARTED,
    changes={
        "resize_database": Change(
            kind="database",
            attribute="size_gb",
            value=lambda p: PLAN_DATABASE_GB[p["to"]],
            before=lambda p: PLAN_DATABASE_GB[p["from"]],
            label="database size",
            shown=_gb,
        ),
        "change_billing_plan": Change(
            kind="billing",
            attribute="plan",
            value=lambda p: p["to"],
            before=lambda p: p["from"],
            label="billing plan",
        ),
    },
    checks=("validate_change",),
    stalled_advice="Cancel it to revert what changed; the tenant stays on its old plan.",
)

KINDS: dict[str, Kind] = {k.name: k for k in (PROVISION, PLAN_CHANGE)}

# Merged over every kind (step names are unique): what a step does, by its name alone.
STEP_ALLOCATES: dict[str, str] = {s: a for k in KINDS.values() for s, a in k.allocates.items()}
STEP_CHANGES: dict[str, Change] = {s: c for k in KINDS.values() for s, c in k.changes.items()}
ALL_STEPS: tuple[str, ...] = tuple(s for k in KINDS.values() for s in k.steps)
WORKING_STATE: dict[str, str] = {k.name: k.working_state for k in KINDS.values()}
WORKING_STATES: tuple[str, ...] = tuple(dict.fromkeys(WORKING_STATE.values()))
if len(set(ALL_STEPS)) != len(ALL_STEPS):
    raise ImportError("step names must be unique across saga kinds")


def kind_of(run: Any) -> Kind:
    return KINDS[getattr(run, "kind", RunKind.PROVISION) or RunKind.PROVISION]


def plan_change_preview(old: str, new: str) -> list[dict[str, Any]]:
    """What a plan change from ``old`` to ``new`` changes, in order (for previews)."""
    params = {"from": old, "to": new}
    out: list[dict[str, Any]] = [{"what": "plan", "from": old, "to": new}]
    for step in PLAN_CHANGE.steps:
        change = PLAN_CHANGE.changes.get(step)
        if change is not None:
            out.append(
                {
                    "what": change.label,
                    "kind": change.kind,
                    "step": step,
                    "from": change.before(params),
                    "to": change.value(params),
                    "from_text": change.shown(change.before(params)),
                    "to_text": change.shown(change.value(params)),
                }
            )
    return out
