"""The rough edges a new operator hit on the first try (issue 8), each pinned by a test."""

from __future__ import annotations

import logging
import re

import pytest

from tenants.services import Actor, create_tenant

from .. import factories as f
from ..console.conftest import login

pytestmark = pytest.mark.django_db


def test_a_refused_request_logs_one_line_without_a_traceback(client, viewer, caplog):
    login(client, viewer)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get("/tenants/new/")
    assert response.status_code == 403
    records = [r for r in caplog.records if r.name == "django.request"]
    assert len(records) == 1
    record = records[0]
    assert record.exc_info is None and record.exc_text is None
    text = record.getMessage()
    assert "\n" not in text and "tenants.add_tenant" in text


def test_the_viewer_refusal_names_the_missing_permission(client, viewer):
    login(client, viewer)
    body = client.get("/tenants/new/").content.decode()
    assert "tenants.add_tenant" in body
    assert "operator" in body and "admin" in body


def test_an_outsider_is_told_which_permission_is_missing(client, outsider):
    login(client, outsider)
    response = client.get("/tenants/")
    assert response.status_code == 403
    assert "tenants.view_tenant" in response.content.decode()


def test_there_is_a_favicon(client, viewer):
    login(client, viewer)
    body = client.get("/tenants/").content.decode()
    assert 'rel="icon" href="/static/favicon.svg"' in body
    assert client.get("/static/favicon.svg").status_code == 200
    redirect = client.get("/favicon.ico")
    assert redirect.status_code == 301 and redirect["Location"] == "/static/favicon.svg"


STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


def test_timestamps_have_one_format_with_the_zone_everywhere(fast_saga, client, admin_user):
    tenant = f.active_tenant()
    login(client, admin_user)
    for url in ("/tenants/", f"/tenants/{tenant.id}/", "/audit/", "/admin/tenants/tenant/"):
        body = client.get(url).content.decode()
        assert STAMP.search(body), url


def test_every_bad_field_is_reported_at_once_faults_included(fast_saga):
    from tenants.errors import OperationError

    with pytest.raises(OperationError) as caught:
        create_tenant(
            slug="A",
            name=" ",
            plan="huge",
            admin_email="nope",
            actor=Actor.shell("t"),
            faults={"no_such_step": "fail", "create_database": "explode", "mark_active": "fail"},
        )
    details = caught.value.details
    assert set(details) == {"slug", "name", "plan", "admin_email", "faults"}
    faults = " ".join(details["faults"])
    assert "no_such_step" in faults and "create_database" in faults


def _embedded_settings(tmp_path, code: str) -> str:
    """What ``manage.py`` in a plain shell sees (no DATABASE_URL, no broker URL)."""
    import os
    import subprocess
    import sys

    from ..conftest import ROOT

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CONTROLPLANE_FAULT_INJECTION")
    }
    env.update(CONTROLPLANE_VAR_DIR=str(tmp_path), SECRET_KEY="test-only")
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


FAULTS = "from django.conf import settings; print(settings.CONTROLPLANE_FAULT_INJECTION)"


def test_a_second_shell_sees_make_runs_development_settings(tmp_path):
    """``make run`` writes var/dev-settings.env; manage.py in another shell reads it."""
    (tmp_path / "dev-settings.env").write_text("CONTROLPLANE_FAULT_INJECTION=1\n")
    assert _embedded_settings(tmp_path, FAULTS) == "True"
    (tmp_path / "dev-settings.env").unlink()  # make run stopped
    assert _embedded_settings(tmp_path, FAULTS) == "False"


def test_a_plain_shell_finds_the_embedded_engine(tmp_path):
    """Without DATABASE_URL and CELERY_BROKER_URL, settings name the embedded PostgreSQL and
    Valkey of the var/ folder (Unix sockets under var/run), whoever asks."""
    code = (
        "from django.conf import settings; db = settings.DATABASES['default']; "
        "print(db['ENGINE'], db['HOST'], settings.CELERY_BROKER_URL)"
    )
    engine, host, broker = _embedded_settings(tmp_path, code).split()
    assert engine == "django.db.backends.postgresql"
    assert host == str(tmp_path.resolve() / "run")
    assert broker == f"redis+socket://{tmp_path.resolve() / 'run' / 'valkey.sock'}?virtual_host=0"
