"""``/metrics``: who may scrape, and that the numbers are the database's, in any process."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.tokens import issue_token, recent_tokens
from observability.metrics import SCRAPE_QUERIES, STEP_DURATION_BUCKETS
from observability.pulse import record_watchdog_pass
from provisioning.models import STEPS, StepExecution
from tenants.models import Tenant

from .. import factories as f
from ..conftest import ROOT, subprocess_env, wait_for

pytestmark = [pytest.mark.django_db]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, keyed by name and sorted labels."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def bearer(user: Any, name: str) -> dict[str, str]:
    _, raw = issue_token(user=user, name=name)
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


# --- who may scrape -------------------------------------------------------------------------


def test_anonymous_is_asked_for_a_token(client):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_bad_token_is_refused(client, viewer):
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer cpt_not-a-real-token")
    assert response.status_code == 401


def test_a_token_of_a_user_who_cannot_view_tenants_is_forbidden(client, outsider):
    response = client.get("/metrics", **bearer(outsider, "outsider-scraper"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize("persona", ["viewer", "operator", "admin_user"])
def test_every_role_token_may_scrape(client, persona, request):
    user = request.getfixturevalue(persona)
    response = client.get("/metrics", **bearer(user, f"{persona}-scraper"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")


def test_a_logged_in_viewer_may_scrape(client, viewer):
    client.force_login(viewer)
    assert client.get("/metrics").status_code == 200


def test_public_when_configured(client, settings):
    settings.CONTROLPLANE_METRICS_PUBLIC = True
    assert client.get("/metrics").status_code == 200


# --- the numbers ----------------------------------------------------------------------------


@pytest.fixture
def fleet(settings, fast_saga) -> dict[str, Any]:
    """Tenants in known situations, built through the services."""
    f.active_tenant()
    f.active_tenant()
    f.failed_tenant(step="create_database")
    f.stalled_tenant(settings)
    f.pending_with_error(settings)  # an allocation still held with its release error
    f.pending_tenant()
    f.suspended_tenant()
    f.provisioning_tenant()
    record_watchdog_pass()
    return {}


def check_against_database(found: dict[Any, float]) -> None:
    for state in ("pending", "provisioning", "active", "failed", "suspended", "decommissioned"):
        expected = Tenant.objects.filter(state=state).count()
        assert value(found, "controlplane_tenants", state=state) == expected, state
    known = {"active": 2, "suspended": 1, "failed": 1, "provisioning": 2, "pending": 2}
    assert {s: value(found, "controlplane_tenants", state=s) for s in known} == known
    attention = {
        c: value(found, "controlplane_tenants_needing_attention", condition=c)
        for c in ("stalled", "orphaned", "release_failed", "failed")
    }
    assert attention == {"stalled": 1, "orphaned": 0, "release_failed": 1, "failed": 1}
    # The failed tenant's create_database failed on each of its three tries.
    assert value(found, "controlplane_step_failures_total", step="create_database") == 3
    assert value(found, "controlplane_step_failures_total", step="mark_active") == 0
    for step in STEPS:
        completed = StepExecution.objects.filter(name=step, status="completed").count()
        count = value(found, "controlplane_step_duration_seconds_count", step=step)
        assert count == completed, step
        assert value(found, "controlplane_step_duration_seconds_bucket", step=step, le="+Inf") == (
            completed
        )
        buckets = [
            value(found, "controlplane_step_duration_seconds_bucket", step=step, le=repr(float(b)))
            for b in STEP_DURATION_BUCKETS
        ]
        assert buckets == sorted(buckets) and buckets[-1] <= completed
    created = value(found, "controlplane_operations_total", operation="create", outcome="accepted")
    assert created == Tenant.objects.count()
    assert (
        value(found, "controlplane_operations_total", operation="suspend", outcome="completed") == 1
    )
    assert (
        value(found, "controlplane_operations_total", operation="cancel", outcome="accepted") == 1
    )
    assert value(found, "controlplane_watchdog_last_run_timestamp_seconds") > 1.7e9


def test_metrics_match_the_database_in_a_bounded_number_of_queries(
    client, fleet, viewer, django_assert_num_queries
):
    headers = bearer(viewer, "prometheus")
    assert client.get("/metrics", **headers).status_code == 200  # last_used_at, once a minute
    # The scrape's own queries, plus the token (with its user) and the user's permissions.
    recent_tokens.forget_all()
    with django_assert_num_queries(SCRAPE_QUERIES + 2):
        response = client.get("/metrics", **headers)
    assert response.status_code == 200
    check_against_database(samples(response.content.decode()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.services
def test_two_web_processes_report_the_same_database_numbers(
    fleet, viewer, settings, transactional_db, tmp_path
):
    """Two gunicorn processes, scraped in turn: both answer what the database holds."""
    _, raw = issue_token(user=viewer, name="prometheus")
    env = subprocess_env(settings, ALLOWED_HOSTS="127.0.0.1")
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "controlplane.wsgi",
                "--workers",
                "1",
                "--bind",
                f"127.0.0.1:{port}",
            ],
            cwd=ROOT,
            env=env,
            stdout=(tmp_path / f"web-{port}.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for port in ports
    ]

    def scrape(port: int) -> str | None:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {raw}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310
                return response.read().decode()
        except OSError:
            return None

    try:
        texts = [wait_for(lambda p=p: scrape(p), timeout=60, what=f"web on {p}") for p in ports]
        for text in texts:
            check_against_database(samples(text))
        # A change made anywhere is seen by both at the next scrape.
        f.failed_tenant(step="configure_dns")
        for port in ports:
            found = samples(scrape(port) or "")
            assert value(found, "controlplane_tenants_needing_attention", condition="failed") == 2
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=20)
