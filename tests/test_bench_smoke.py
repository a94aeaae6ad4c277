"""Each benchmark of bench/suite.py with tiny sizes: it runs and its figures are sane.

Nothing here is timed or compared with a threshold: the numbers are for `make bench` and
docs/performance.md. This only keeps the benchmarks working as the code changes.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from bench import suite

from .conftest import ROOT, purge_broker, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bench_env(fast_saga: Any) -> dict[str, str]:
    purge_broker()
    suite.purge("floor")
    yield subprocess_env(
        fast_saga,
        DJANGO_SETTINGS_MODULE="bench.settings",
        PYTHONPATH=str(ROOT),
        LOG_LEVEL="WARNING",
    )
    purge_broker()
    suite.purge("floor")


def test_saga_throughput_and_its_floor_run(bench_env):
    floor, floor_rss = suite.floor_throughput(bench_env, chains=2)
    ours, ours_rss = suite.saga_throughput(bench_env, tenants=2)
    assert floor > 0 and ours > 0
    assert floor_rss > 10 and ours_rss > 10


def test_saga_throughput_with_remote_providers_runs(bench_env):
    ours, _ = suite.saga_throughput({**bench_env, "BENCH_PROVIDERS": "remote"}, tenants=2)
    assert ours > 0


def test_latency_of_one_provisioning_and_of_the_floor_chain(bench_env):
    ours, floor = suite.latencies(bench_env, repeat=1)
    assert len(ours.values) == len(floor.values) == 1
    assert ours.median > 0 and floor.median > 0


def test_statements_per_step_are_counted_and_the_floor_is_four_and_one():
    n = suite.statements_per_step()
    assert (n["floor"], n["floor_commits"]) == (4, 1)
    assert 4 < n["saga"] <= n["all"] < 40
    assert 1 <= n["saga_commits"] <= 2 and n["saga_commits"] <= n["all_commits"]


def test_reads_over_http_with_both_floors(bench_env):
    results, rss = suite.http_rounds(bench_env, rounds=1, seconds=1, connections=2)
    assert set(results) == {
        suite.BARE_FLOOR,
        suite.IN_STACK_FLOOR,
        suite.API_DETAIL,
        suite.CONSOLE_DETAIL,
    }
    assert all(sample.median > 0 and len(sample.loads) == 1 for sample in results.values())
    assert set(rss) == {"bare", "in-stack", "ours"}
    assert all(sample.median > 10 for sample in rss.values())


OURS = ("controlplane", "tenants", "provisioning", "audit", "api", "console", "observability")
OURS += ("webhooks",)

# Serves one tenant through the bare project's WSGI application, as gunicorn would, then lists
# every module of ours the process has imported.
BARE_PROBE = """
import json, sys
from bench.bare.wsgi import application
from django.test import Client

answer = Client().get(sys.argv[1])
ours = sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[2].split(","))
print(json.dumps({"status": answer.status_code, "ours": ours}))
"""


def test_the_bare_project_serves_its_view_in_its_own_gunicorn(bench_env):
    from tenants.services import Actor, create_tenant

    tenant = create_tenant(
        slug="bare-floor",
        name="Bare floor",
        plan="starter",
        admin_email="bare@bench.test",
        actor=Actor.shell("bench"),
    )
    server = suite.Gunicorn(suite.bare_env(bench_env), app="bench.bare.wsgi", workers=1)

    def get(path: str) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.request("GET", path)
            answer = conn.getresponse()
            return answer.status, answer.getheader("Content-Type", ""), answer.read()
        finally:
            conn.close()

    try:
        found = get(f"/tenants/{tenant.id}")
        missing = get(f"/tenants/{uuid.uuid4()}")
        # Nothing of ours answers there: the product's pages are not served.
        api = get("/api/v1/tenants")
    finally:
        server.stop()
    assert found[:2] == (200, "application/json")
    body = json.loads(found[2])
    assert (body["id"], body["slug"], body["state"]) == (str(tenant.id), "bare-floor", tenant.state)
    assert len(body["copies"]) == 8 and body["copies"][0] == {
        k: v for k, v in body.items() if k != "copies"
    }
    assert missing[0] == 404 and api[0] == 404


def test_the_bare_project_imports_none_of_our_apps(bench_env):
    from tenants.services import Actor, create_tenant

    tenant = create_tenant(
        slug="bare-imports",
        name="Bare imports",
        plan="starter",
        admin_email="bare@bench.test",
        actor=Actor.shell("bench"),
    )
    out = subprocess.run(
        [sys.executable, "-c", BARE_PROBE, f"/tenants/{tenant.id}", ",".join(OURS)],
        cwd=ROOT,
        env=suite.bare_env(bench_env),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(out.stdout.splitlines()[-1]) == {"status": 200, "ours": []}


@pytest.mark.parametrize("busy", [False, True], ids=["slot-free", "slots-busy"])
def test_cancel_reaches_pending_with_nothing_held(bench_env, busy):
    sample = suite.cancel_latency(bench_env, repeat=1, busy=busy)
    assert len(sample.values) == 1 and sample.median > 0


def test_throughput_with_slow_providers_on_a_threads_pool(bench_env):
    env = {**bench_env, "BENCH_PROVIDER_LATENCY": "0.01", "DATABASE_POOL": "1"}
    rate, _ = suite.saga_throughput(env, tenants=2, concurrency=4, pool="threads")
    assert rate > 0


def test_the_python_load_generator_used_without_wrk(bench_env):
    server = suite.Gunicorn(bench_env, workers=1)
    try:
        # Any page answering 200 without a login will do.
        rate = suite._python_load(
            f"http://127.0.0.1:{server.port}/api/v1/openapi.json",
            {},
            seconds=0.5,
            connections=2,
        )
    finally:
        server.stop()
    assert rate > 0


def test_the_bench_runner_offers_every_benchmark():
    text = (Path(ROOT) / "bench" / "run.py").read_text()
    for name in ("saga", "latency", "sql", "reads", "cancel", "scale", "memory"):
        assert f'"{name}"' in text
