"""Fault injection (development and tests only): what a run's ``faults`` map may say, and
what each fault does to a step's try."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .models import STEPS
from .providers import ProviderError

if TYPE_CHECKING:
    from .heartbeat import Heartbeat

FAULT_KINDS = ("fail", "fail_once", "stall")
FAULTS_SYNTAX = (
    "step=fault pairs separated by commas (create_database=fail, configure_dns=fail_once) or "
    'a JSON object ({"create_database": "fail"})'
)


def parse_faults(raw: object) -> object:
    """The one faults syntax of every door (console, API, admin, commands): text is either
    ``step=fault`` pairs separated by commas or new lines, or a JSON object; anything else
    (an object already parsed, ``None``) is handed on for ``validate_faults`` to judge.

    Raises ValueError saying which of the two shapes the text was read as and what is wrong.
    """
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"Not valid JSON ({exc.msg} at character {exc.pos + 1}); write " + FAULTS_SYNTAX
            ) from None
        if not isinstance(value, dict):
            raise ValueError("Faults are " + FAULTS_SYNTAX)
        return value
    faults: dict[str, str] = {}
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        step, equals, fault = part.partition("=")
        if not equals or not step.strip() or not fault.strip():
            raise ValueError(f"{part!r} is not step=fault; write " + FAULTS_SYNTAX)
        faults[step.strip()] = fault.strip()
    return faults


def validate_faults(faults: object, steps: tuple[str, ...] = STEPS) -> dict[str, str]:
    """Check a ``faults`` map for a run of ``steps`` (provisioning's unless told); raise
    ValueError naming what is wrong."""
    if faults is None:
        return {}
    if not isinstance(faults, dict):
        raise ValueError("faults must be an object mapping step names to faults")
    clean: dict[str, str] = {}
    for step, fault in faults.items():
        if step not in steps:
            raise ValueError(f"unknown step {step!r}; steps are {', '.join(steps)}")
        if not isinstance(fault, str):
            raise ValueError(f"fault for {step} must be a string")
        if fault.startswith("slow:"):
            try:
                seconds = float(fault.removeprefix("slow:"))
            except ValueError:
                raise ValueError(f"fault for {step}: slow:<seconds> needs a number") from None
            if not 0 <= seconds <= 3600:
                raise ValueError(f"fault for {step}: slow takes 0 to 3600 seconds")
        elif fault not in FAULT_KINDS:
            raise ValueError(
                f"fault for {step} must be one of fail, fail_once, stall, slow:<seconds>"
            )
        clean[step] = fault
    return clean


def apply_fault(fault: str, *, step: str, tries: int, hb: Heartbeat) -> None:
    """Do what the fault says to this try of ``step`` (``stall`` is handled by the caller)."""
    if not fault:
        return
    if fault == "fail":
        raise ProviderError(f"injected failure in {step}")
    if fault == "fail_once" and tries == 1:
        raise ProviderError(f"injected one-time failure in {step}")
    if fault.startswith("slow:"):
        hb.sleep(float(fault.removeprefix("slow:")))
