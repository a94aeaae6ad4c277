"""What an operator types, checked once for every door: a reason, a new tenant's fields, the
faults a run is asked to inject. Each refusal is a ``validation_error`` naming the field.

Split from ``tenants.services`` by concept.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from provisioning.faults import parse_faults, validate_faults
from provisioning.models import STEPS

from .errors import ErrorCode, OperationError
from .models import Plan, normalise_slug, validate_slug

REASON_MAX_LENGTH = 500


def clean_reason(reason: Any) -> str:
    """An operator's reason for an operation: optional text, at most 500 characters.

    Trimmed; line breaks and tabs are kept, other control characters refused (a NUL cannot be
    stored, and a terminal escape in the audit feed is never meant).
    """
    if reason is None:
        return ""
    problem = ""
    if not isinstance(reason, str):
        problem = "The reason must be text."
    else:
        reason = reason.strip()
        if len(reason) > REASON_MAX_LENGTH:
            problem = f"A reason has at most {REASON_MAX_LENGTH} characters."
        elif any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\t\r" for ch in reason):
            problem = "Control characters are not allowed in a reason."
    if problem:
        raise OperationError(ErrorCode.VALIDATION_ERROR, problem, {"reason": [problem]})
    return str(reason)


def validate_tenant_fields(*, slug: Any, name: Any, plan: Any, admin_email: Any) -> dict[str, str]:
    """Check and normalise the fields of a new tenant; raise with a message per bad field."""
    errors: dict[str, list[str]] = {}
    clean: dict[str, str] = {}
    for key, value in (
        ("slug", slug),
        ("name", name),
        ("plan", plan),
        ("admin_email", admin_email),
    ):
        if not isinstance(value, str):
            errors.setdefault(key, []).append("This field is required and must be text.")
        elif any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
            # NUL and other control characters (or lone surrogates) are never meant, and
            # PostgreSQL refuses NUL: say so here rather than fail at the database.
            errors.setdefault(key, []).append("Control characters are not allowed.")
        elif any(unicodedata.category(ch) == "Cf" for ch in value):
            # Bidi overrides and zero-width characters (Unicode "format" characters) make a
            # name display as something else than it is ("Trojan Source"): one tenant could
            # look like another in every list. They are never needed in a name.
            errors.setdefault(key, []).append(
                "Invisible formatting characters (bidi controls such as U+202E, zero-width "
                "characters such as U+200B) are not allowed."
            )
    if not errors.get("slug"):
        slug = normalise_slug(slug)
        try:
            validate_slug(slug)
            clean["slug"] = slug
        except ValidationError as exc:
            errors["slug"] = list(exc.messages)
    if not errors.get("name"):
        trimmed = name.strip()
        if not 1 <= len(trimmed) <= 200:
            errors["name"] = ["A name has 1 to 200 characters (after trimming spaces)."]
        else:
            clean["name"] = trimmed
    if not errors.get("plan"):
        if plan not in Plan.values:
            errors["plan"] = [f"Choose one of {', '.join(Plan.values)}."]
        else:
            clean["plan"] = plan
    if not errors.get("admin_email"):
        email = admin_email.strip().lower()
        try:
            if len(email) > 254:
                raise ValidationError("too long")
            validate_email(email)
            clean["admin_email"] = email
        except ValidationError:
            errors["admin_email"] = ["Enter a valid e-mail address."]
    if errors:
        raise OperationError(ErrorCode.VALIDATION_ERROR, "Some fields are not valid.", errors)
    return clean


def clean_faults(faults: Any, steps: tuple[str, ...] = STEPS) -> dict[str, str]:
    # Text in the one syntax every door takes (step=fault pairs or a JSON object).
    try:
        faults = parse_faults(faults)
    except ValueError as exc:
        raise OperationError(ErrorCode.VALIDATION_ERROR, str(exc), {"faults": [str(exc)]}) from None
    if not faults:
        return {}
    if not settings.CONTROLPLANE_FAULT_INJECTION:
        raise OperationError(
            ErrorCode.VALIDATION_ERROR,
            "Fault injection is off (CONTROLPLANE_FAULT_INJECTION).",
            {
                "faults": [
                    "Fault injection is not enabled on this control plane "
                    "(CONTROLPLANE_FAULT_INJECTION)."
                ]
            },
        )
    if not isinstance(faults, dict):
        try:
            return validate_faults(faults, steps)
        except ValueError as exc:
            raise OperationError(
                ErrorCode.VALIDATION_ERROR, str(exc), {"faults": [str(exc)]}
            ) from None
    # Every bad step at once, not the first one only.
    problems: list[str] = []
    clean: dict[str, str] = {}
    for step, fault in faults.items():
        try:
            clean.update(validate_faults({step: fault}, steps))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise OperationError(ErrorCode.VALIDATION_ERROR, "; ".join(problems), {"faults": problems})
    return clean
