#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def load_dev_settings() -> None:
    """While ``make run`` is up it writes its development settings (fault injection, step
    delay) to ``var/dev-settings.env``, so a command typed in a second shell behaves like the
    running portal (``tenant create --faults ...``). Variables already set win; the file is
    removed when ``make run`` stops, and ignored once DATABASE_URL names a real database."""
    if os.environ.get("DATABASE_URL"):
        return
    var = Path(os.environ.get("CONTROLPLANE_VAR_DIR", Path(__file__).resolve().parent / "var"))
    path = var / "dev-settings.env"
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            os.environ.setdefault(key.strip(), value.strip())


def main() -> None:
    load_dev_settings()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
