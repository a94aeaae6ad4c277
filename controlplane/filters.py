"""The pieces every list's filters are parsed with (``tenants.selectors.TenantFilters``,
``audit.selectors.AuditFilters``), so a bad filter gets the same message and the same limit
whichever door it was typed into: the API, the console, the admin, a command or a bulk
operation's ``filter``.

A problem is collected per field and raised once, as one ``validation_error`` whose message
says every problem (``filter_error``): the API answers it as a 422, the console shows the
message above the list, a command exits with it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ErrorCode, OperationError

Problems = dict[str, list[str]]


def clean_text(value: Any) -> str:
    """Text fit to filter on: trimmed, without control characters (a NUL in a search box is
    never meant, and PostgreSQL refuses it in a query). Not bounded: see ``text``."""
    if value is None:
        return ""
    return "".join(ch for ch in str(value) if unicodedata.category(ch) not in ("Cc", "Cs")).strip()


def text(value: Any, field: str, max_length: int, problems: Problems) -> str:
    """A text filter; longer than ``max_length`` is refused, never cut silently (a cut search
    would answer a question nobody asked)."""
    if value is not None and not isinstance(value, str | int):
        problems[field] = [f"{field} must be text."]
        return ""
    cleaned = clean_text(value)
    if len(cleaned) > max_length:
        problems[field] = [f"{field} must be at most {max_length} characters."]
        return ""
    return cleaned


def boolean(value: Any, field: str, problems: Problems) -> bool:
    if value is None or value == "" or isinstance(value, bool):
        return bool(value)
    word = str(value).strip().lower()
    if word in ("true", "1", "yes", "on"):
        return True
    if word in ("false", "0", "no", "off"):
        return False
    problems[field] = [f"{field} must be true or false."]
    return False


def one_of(value: Any, field: str, allowed: Iterable[str], noun: str, problems: Problems) -> str:
    """One value of ``allowed``, or "" when none is given."""
    allowed = list(allowed)
    chosen = text(value, field, 40, problems)
    if chosen and chosen not in allowed:
        problems[field] = [f"Unknown {noun} {chosen!r}; {noun}s are {', '.join(allowed)}."]
        return ""
    return chosen


def choices(
    value: Any, field: str, allowed: Iterable[str], noun: str, problems: Problems
) -> tuple[str, ...]:
    """One value, a comma list, or a list of them, each one of ``allowed``."""
    allowed = list(allowed)
    raw = value if isinstance(value, list | tuple) else [value]
    wanted: list[str] = []
    for part in raw:
        for name in text(part, field, 400, problems).split(","):
            name = name.strip()
            if name and name not in wanted:
                wanted.append(name)
    unknown = [c for c in wanted if c not in allowed]
    if unknown:
        problems[field] = [
            f"Unknown {noun} {', '.join(map(repr, unknown))}; {noun}s are {', '.join(allowed)}."
        ]
        return ()
    return tuple(wanted)


def known_keys(given: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Refuse a filter nobody reads (a typo'd key must never mean "everything")."""
    allowed = list(allowed)
    unknown = sorted(str(k) for k in set(given) - set(allowed))
    if unknown:
        message = (
            f"Unknown filter {', '.join(map(repr, unknown))}; filters are {', '.join(allowed)}."
        )
        raise OperationError(ErrorCode.VALIDATION_ERROR, message, {"filter": [message]})


def filter_error(problems: Problems) -> OperationError:
    """One ``validation_error`` for every problem, its message saying each of them."""
    message = " ".join(m for ms in problems.values() for m in ms)
    return OperationError(ErrorCode.VALIDATION_ERROR, message, problems)
