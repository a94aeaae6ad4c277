"""What every benchmark does first: a fresh, migrated database and this process set up on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fresh_database(**settings: str) -> dict[str, str]:
    """DROP and recreate the database DATABASE_URL names, migrate it, set Django up on it.

    Returns the environment (with ``settings`` added) for any child process to share.
    """
    url = os.environ["DATABASE_URL"]
    dbname = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    subprocess.run(["psql", admin_url, "-qc", f"DROP DATABASE IF EXISTS {dbname}"], check=True)
    subprocess.run(["psql", admin_url, "-qc", f"CREATE DATABASE {dbname}"], check=True)
    env = dict(os.environ, SECRET_KEY="bench", CONTROLPLANE_VAR_DIR="/tmp/cp-bench-var", **settings)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    return env
