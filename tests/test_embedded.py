"""The embedded default, as `make run` uses it: SQLite and the filesystem broker, with web-side
code and a worker in separate processes and no server of any kind."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from queue import Empty

import pytest
from kombu import Connection

from controlplane import folder_broker

from .conftest import ROOT, WorkerProcess, wait_for


def test_a_tenant_reaches_active_on_the_embedded_stack(tmp_path: Path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY"}
    }
    env.update(
        {
            "CONTROLPLANE_VAR_DIR": str(tmp_path / "var"),
            "DEBUG": "1",
            "CONTROLPLANE_INSECURE_HTTP": "1",
            "CONTROLPLANE_HEARTBEAT_TIMEOUT": "5",
        }
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start(concurrency=2)
    try:
        subprocess.run(
            [
                *manage,
                "shell",
                "-c",
                "from tenants.services import Actor, create_tenant; "
                "create_tenant(slug='laptop', name='Laptop', plan='starter', "
                "admin_email='me@laptop.test', actor=Actor.shell('me'))",
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        db = tmp_path / "var" / "db.sqlite3"

        def state() -> str | None:
            with sqlite3.connect(db, timeout=30) as conn:
                row = conn.execute(
                    "SELECT state FROM tenants_tenant WHERE slug='laptop'"
                ).fetchone()
            return row[0] if row else None

        wait_for(lambda: state() == "active", timeout=120, what="the tenant to be active")
        with sqlite3.connect(db) as conn:
            kinds = {
                k
                for (k,) in conn.execute(
                    "SELECT kind FROM provisioning_allocation WHERE released_at IS NULL"
                )
            }
        assert kinds == {"storage", "identity", "database", "dns", "billing", "invite"}
    finally:
        worker.stop()


def test_the_folder_broker_shows_a_message_only_when_it_is_whole(tmp_path: Path, monkeypatch):
    """A consumer polling while a publisher writes finds nothing rather than an empty file
    (kombu's own filesystem transport handed it the empty file: JSONDecodeError, the worker
    stopped and the message was lost)."""
    folders = {k: tmp_path / k for k in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir()
    options = {
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
    }
    with Connection(
        "filesystem://localhost/", transport=folder_broker.Transport, transport_options=options
    ) as conn:
        channel = conn.default_channel
        serialize = folder_broker.dumps

        def serialize_while_a_consumer_polls(payload):
            # The publisher has begun: the consumer must not be handed anything yet.
            with pytest.raises(Empty):
                channel._get("steps")
            return serialize(payload)

        monkeypatch.setattr(folder_broker, "dumps", serialize_while_a_consumer_polls)
        channel._put("steps", {"body": "whole"})
        monkeypatch.undo()
        assert channel._get("steps") == {"body": "whole"}
        assert list(folders["queue"].iterdir()) == list(folders["processed"].iterdir()) == []
