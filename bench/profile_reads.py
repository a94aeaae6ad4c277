"""Where a detail read's time goes: each middleware, auth, permissions, queries, serialization,
templates — measured, per request (docs/performance.md, "Reads: where the time goes").

    .venv/bin/pip install pyinstrument      # into the worktree's .venv; not a dependency
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cp_bench_profile \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/10 .venv/bin/python bench/profile_reads.py

DROPS and recreates the database DATABASE_URL names. One active tenant, a viewer with a
bearer token and a logged-in session (as ``make bench``'s reads), then, in this process,
through Django's WSGI handler exactly as gunicorn calls it (request_started and
request_finished included; no HTTP, no socket): the bare project's view (in a process of its
own), the same view inside our stack, ``GET /api/v1/tenants/{id}`` and the console detail page.
Each is timed without a profiler (ms a request), then sampled by pyinstrument.

Every sample is given to one component — the innermost frame on its stack that belongs to a
component (a middleware's module, token auth, the permission backends, ninja, pydantic, the
templates, our view code…) — and split by what the innermost frames were doing: a SQL round
trip (psycopg and Django's database backend), the ORM (building a query, making instances) or
other Python. So a session's query counts under sessions, as SQL; the per-request sum of the
SQL column is "the queries".
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _ours(*parts: str) -> str:
    return str(ROOT / Path(*parts))


def _lib(path: str) -> str:
    return f"/site-packages/{path}"


# (component, files it is made of, or functions): the innermost match on a stack wins.
COMPONENTS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    (
        "connection housekeeping: close_old_connections at request start and end, "
        "the health check (SELECT 1) on the first query",
        (),
        (
            "close_old_connections",
            "close_if_unusable_or_obsolete",
            "close_if_health_check_failed",
            "is_usable",
        ),
    ),
    ("SecurityMiddleware", (_lib("django/middleware/security.py"),), ()),
    ("CSPMiddleware (django-csp)", (_lib("csp/"),), ()),
    ("WhiteNoiseMiddleware", (_lib("whitenoise/"),), ()),
    ("sessions (SessionMiddleware, the session's load)", (_lib("django/contrib/sessions/"),), ()),
    ("CommonMiddleware", (_lib("django/middleware/common.py"),), ()),
    ("CsrfViewMiddleware", (_lib("django/middleware/csrf.py"),), ()),
    (
        "auth: AuthenticationMiddleware, the session's user",
        (
            _lib("django/contrib/auth/middleware.py"),
            _lib("django/contrib/auth/__init__.py"),
            _lib("django/contrib/auth/backends.py"),
        ),
        (),
    ),
    ("MessageMiddleware", (_lib("django/contrib/messages/"),), ()),
    ("XFrameOptionsMiddleware", (_lib("django/middleware/clickjacking.py"),), ()),
    ("HtmxMiddleware (django-htmx)", (_lib("django_htmx/"),), ()),
    ("AxesMiddleware (django-axes)", (_lib("axes/"), _ours("controlplane", "throttle.py")), ()),
    (
        "LogContextMiddleware (JSON logs' context)",
        (_ours("observability", "middleware.py"), _ours("observability", "logs.py")),
        (),
    ),
    (
        "token auth (api/auth.py, api/tokens.py)",
        (_ours("api", "auth.py"), _ours("api", "tokens.py")),
        (),
    ),
    (
        "permission checks (has_perm, the one-query backend, the views' guards)",
        (
            _ours("tenants", "permissions.py"),
            _ours("console", "auth.py"),
            _lib("django/contrib/auth/decorators.py"),
        ),
        (
            "has_perm",
            "has_perms",
            "require",
            "get_all_permissions",
            "_get_permissions",
            "get_user_permissions",
            "get_group_permissions",
        ),
    ),
    ("ninja (operation, parameters, auth loop, response)", (_lib("ninja/"),), ()),
    ("pydantic (validation, model_dump)", (_lib("pydantic/"), _lib("pydantic_core/")), ()),
    (
        "JSON encoding",
        (
            _lib("django/core/serializers/json.py"),
            "/lib/python3.11/json/",
            _lib("ninja/renderers.py"),
        ),
        (),
    ),
    (
        "template rendering",
        (
            _lib("django/template/"),
            _lib("template_partials/"),
            _ours("console", "templatetags"),
            _lib("django/templatetags/"),
            _lib("django/utils/html.py"),
            _lib("django/utils/safestring.py"),
            _lib("django/utils/formats.py"),
            _lib("django/utils/dateformat.py"),
        ),
        (),
    ),
    (
        "our view code (api/views.py, console/views.py, tenants/selectors.py, presenters)",
        (
            _ours("api", "views.py"),
            _ours("api", "schemas.py"),
            _ours("console", "views.py"),
            _ours("console", "presenters.py"),
            _ours("tenants", "selectors.py"),
            _ours("tenants", "operations.py"),
            _ours("tenants", "services.py"),
            _ours("provisioning"),
            _ours("bench", "bare", "urls.py"),
        ),
        (),
    ),
    ("URL resolving and reverse()", (_lib("django/urls/"),), ()),
]
BASE = "Django's handler (WSGI, request and response objects, signals)"

SQL_FILES = (_lib("psycopg/"), _lib("psycopg_pool/"), _lib("django/db/backends/"))
ORM_FILES = (_lib("django/db/models/"),)


def component_of(frame: Any) -> str | None:
    path, function = frame.file_path or "", frame.function or ""
    for name, files, functions in COMPONENTS:
        if function in functions or any(f in path for f in files):
            return name
    return None


def kind_of(frame: Any) -> str | None:
    path = frame.file_path or ""
    if any(f in path for f in SQL_FILES):
        return "sql"
    if any(f in path for f in ORM_FILES):
        return "orm"
    return None


def attribute(root: Any) -> dict[str, dict[str, float]]:
    """Seconds by component and kind (sql, orm, python), the innermost match winning."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def walk(frame: Any, component: str, kind: str) -> None:
        component = component_of(frame) or component
        kind = kind_of(frame) or kind
        own = frame.time - sum(c.time for c in frame.children)
        if own > 0:
            out[component][kind] += own
        for child in frame.children:
            walk(child, component, kind)

    walk(root, BASE, "python")
    return out


def wsgi_caller(path: str, headers: dict[str, str]) -> Callable[[], int]:
    """One request through Django's WSGI handler, as gunicorn makes it; returns the status."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.client import FakePayload, RequestFactory

    app = WSGIHandler()
    # RequestFactory's environ (private, but the test client's own): what a WSGI server passes.
    meta = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
    base = RequestFactory()._base_environ(
        PATH_INFO=path, REQUEST_METHOD="GET", SERVER_NAME="127.0.0.1", **meta
    )
    statuses: list[str] = []

    def start_response(status: str, _headers: list, _exc: Any = None) -> None:
        statuses.append(status)

    def call() -> int:
        environ = {**base, "wsgi.input": FakePayload(b"")}
        body = app(environ, start_response)
        try:
            b"".join(body)
        finally:
            body.close()
        return int(statuses.pop().split()[0])

    return call


def timed(call: Callable[[], int], n: int) -> float:
    """ms a request, after a warm-up; fails on any answer but 200."""
    for _ in range(max(20, n // 10)):
        status = call()
        if status != 200:
            raise SystemExit(f"answered {status}, not 200")
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) * 1000 / n


def queries_of(call: Callable[[], int]) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        call()
    return [q["sql"] for q in captured.captured_queries]


def profile(call: Callable[[], int], n: int, interval: float) -> tuple[dict, float]:
    """Seconds by component and kind over ``n`` requests, and the profile's whole time."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=interval)
    profiler.start()
    for _ in range(n):
        call()
    session = profiler.stop()
    root = session.root_frame()
    return attribute(root), root.time


def report(name: str, ms: float, parts: dict, total: float, sql: list[str]) -> None:
    """The components of one target, largest first, in ms of an unprofiled request (each
    component's share of the samples times the unprofiled time: sampling slows every part
    alike, not the shares)."""
    print(f"\n### {name}: {ms:.2f} ms a request unprofiled, {len(sql)} queries\n")
    print("| component | ms a request | share | SQL round trips | ORM | other Python |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    scale = ms / total
    sums: dict[str, float] = defaultdict(float)
    for component, kinds in sorted(parts.items(), key=lambda kv: -sum(kv[1].values())):
        whole = sum(kinds.values())
        for k, v in kinds.items():
            sums[k] += v
        if whole * scale < 0.005:
            continue
        print(
            f"| {component} | {whole * scale:.2f} | {100 * whole / total:.0f} % "
            f"| {kinds.get('sql', 0) * scale:.2f} | {kinds.get('orm', 0) * scale:.2f} "
            f"| {kinds.get('python', 0) * scale:.2f} |"
        )
    print(
        f"| **all** | {ms:.2f} | 100 % | {sums['sql'] * scale:.2f} "
        f"({100 * sums['sql'] / total:.0f} %) | {sums['orm'] * scale:.2f} "
        f"({100 * sums['orm'] / total:.0f} %) | {sums['python'] * scale:.2f} "
        f"({100 * sums['python'] / total:.0f} %) |"
    )
    print("\nQueries:")
    for q in sql:
        print(f"- `{q[:150]}{'…' if len(q) > 150 else ''}`")


BARE_SCRIPT = """
import sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
import bench.bare.wsgi
from profile_reads import profile, queries_of, report, timed, wsgi_caller
call, n = wsgi_caller(sys.argv[1], {{}}), int(sys.argv[2])
ms = timed(call, n)
if len(sys.argv) > 3:  # the profile too
    parts, total = profile(call, n, float(sys.argv[3]))
    report("bare stack (bench/bare), in its own process", ms, parts, total, queries_of(call))
else:
    print(ms)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=1000, help="requests per target")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the two floors")
    parser.add_argument("--interval", type=float, default=0.0005, help="sampling, seconds")
    args = parser.parse_args()
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    from common import fresh_database

    env = fresh_database(
        LOG_LEVEL="WARNING",
        CONTROLPLANE_FAULT_INJECTION="1",
        ALLOWED_HOSTS="127.0.0.1,testserver",
        CONTROLPLANE_INSECURE_HTTP="1",
        PYTHONPATH=str(ROOT),
    )
    from bench import suite

    _, targets = suite.read_targets()
    print(f"Load average at the start: {os.getloadavg()[0]:.1f}; {args.n} requests a target")
    # The two floors, interleaved: the bare project's view in a process of its own, then the
    # same view in ours (this process), ``--rounds`` times; medians.
    _, bare_path, _ = targets[suite.BARE_FLOOR]
    _, in_stack_path, _ = targets[suite.IN_STACK_FLOOR]
    in_stack_call = wsgi_caller(in_stack_path, {})
    bare, in_stack = suite.Sample(), suite.Sample()
    script = BARE_SCRIPT.format(root=str(ROOT), bench=str(ROOT / "bench"))
    for _ in range(args.rounds):
        out = subprocess.run(
            [sys.executable, "-c", script, bare_path, str(args.n)],
            env=suite.bare_env(env),
            capture_output=True,
            text=True,
            check=True,
        )
        bare.add(float(out.stdout))
        in_stack.add(timed(in_stack_call, args.n))
    print(
        f"\nThe floors, {args.rounds} rounds interleaved, median (min–max): the bare project's "
        f"view in its own process {bare.median:.2f} ms a request ({bare.spread}, {bare.load}); "
        f"the same view in our stack {in_stack.median:.2f} ms ({in_stack.spread}, "
        f"{in_stack.load}): our middleware and settings add {in_stack.median - bare.median:.2f} "
        "ms a request"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, bare_path, str(args.n), str(args.interval)],
        env=suite.bare_env(env),
        capture_output=True,
        text=True,
        check=True,
    )
    print(out.stdout, end="")
    for name in (suite.IN_STACK_FLOOR, suite.API_DETAIL, suite.CONSOLE_DETAIL):
        _, path, headers = targets[name]
        call = wsgi_caller(path, headers)
        ms = timed(call, args.n)
        sql = queries_of(call)
        parts, total = profile(call, args.n, args.interval)
        report(name, ms, parts, total, sql)
    print(f"\nLoad average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
