"""pytest plugin (``-p controlplane.pytest_embedded`` in pyproject's addopts): the suite's
PostgreSQL and Redis.

With ``DATABASE_URL`` and ``CELERY_BROKER_URL`` set (CI, or servers of your own) the suite uses
them. Without them (a laptop, a fresh clone) this starts the embedded PostgreSQL and Valkey under
``var/`` for the session (or uses them when ``make run`` is already up) and stops what it started
when the session ends: the same engines as CI, so every test runs everywhere.

The suite's queues live in their own Redis database (``embedded.BROKER_DB_TEST``), so purging
them never touches a running portal's; its database is pytest-django's ``test_controlplane``.
Runs before pytest-django reads the settings (a hook wrapper around loading the conftests).
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

from controlplane import embedded

_servers: embedded.EmbeddedServers | None = None


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, None, None]:
    global _servers
    if not os.environ.get("DATABASE_URL") or not os.environ.get("CELERY_BROKER_URL"):
        _servers = embedded.EmbeddedServers().start()
        # Child processes (workers, commands, live servers) inherit these.
        os.environ.setdefault("CELERY_BROKER_URL", embedded.broker_url(embedded.BROKER_DB_TEST))
    return (yield)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _servers is not None:
        _servers.stop()
