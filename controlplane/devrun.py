"""``make run``: the embedded servers, migrate, seed, then web + worker + watchdog until Ctrl-C.

Without DATABASE_URL / CELERY_BROKER_URL it starts the embedded PostgreSQL and Valkey under
var/ (controlplane/embedded.py) first and stops them last. Every process is a child of this
one, and dies with it even when this one is killed outright (a parent-death signal). A child
that dies is started again after a backoff (1s, doubling up to 30s, back to 1s once it has
stayed up for a minute), and the runner says so; Ctrl-C stops them all.
``CONTROLPLANE_RUN_PORT`` (8000) is the web port; a port already taken is said, not looped on.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from controlplane import embedded

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    env = dict(os.environ)
    env.setdefault("DEBUG", "1")
    # runserver on 127.0.0.1 is plain HTTP: no HTTPS redirect, HSTS or Secure cookies.
    env.setdefault("CONTROLPLANE_INSECURE_HTTP", "1")
    env.setdefault("CONTROLPLANE_STEP_DELAY", "1.5")
    env.setdefault("CONTROLPLANE_FAULT_INJECTION", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    port = int(env.get("CONTROLPLANE_RUN_PORT", "8000"))
    if not port_is_free(port):
        print(
            f"Port {port} is taken (another `make run`?). Stop what holds it, or choose another "
            f"port: CONTROLPLANE_RUN_PORT=8001 make run",
            file=sys.stderr,
        )
        return 1
    servers = None
    if not env.get("DATABASE_URL") or not env.get("CELERY_BROKER_URL"):
        started = time.monotonic()
        servers = embedded.EmbeddedServers().start()
        print(
            f"Embedded PostgreSQL and Valkey on {servers.sockets} "
            f"({time.monotonic() - started:.1f}s; data in {servers.var}).",
            flush=True,
        )
    try:
        return _run(env, port)
    finally:
        if servers is not None:
            servers.stop()
            print("Embedded PostgreSQL and Valkey stopped.", flush=True)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _run(env: dict[str, str], port: int) -> int:
    py = sys.executable
    manage = [py, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run([*manage, "seed_demo"], cwd=ROOT, env=env, check=True)
    var = Path(env.get("CONTROLPLANE_VAR_DIR", ROOT / "var"))
    # What a second shell's manage.py reads while this runs (see manage.load_dev_settings).
    dev_settings = var / "dev-settings.env"
    dev_settings.write_text(
        "# Written by `make run` while it runs; removed when it stops.\n"
        + "".join(
            f"{key}={env[key]}\n"
            for key in ("DEBUG", "CONTROLPLANE_STEP_DELAY", "CONTROLPLANE_FAULT_INJECTION")
        )
    )
    commands = {
        "web": [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
        "worker": [
            py,
            "-m",
            "celery",
            "-A",
            "controlplane",
            "worker",
            "--loglevel=INFO",
            "--concurrency=2",
            "--without-gossip",
            "--without-mingle",
            "-Q",
            "celery",
            "-n",
            "steps@%h",
        ],
        # Rollback, decommission, the watchdog and scheduled operations never wait behind busy
        # step slots.
        "control": [
            py,
            "-m",
            "celery",
            "-A",
            "controlplane",
            "worker",
            "--loglevel=INFO",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
            "-Q",
            "control",
            "-n",
            "control@%h",
        ],
        "watchdog": [
            py,
            "-m",
            "celery",
            "-A",
            "controlplane",
            "beat",
            "--loglevel=INFO",
            f"--schedule={var / 'celerybeat-schedule'}",
        ],
    }
    procs = {name: _start(cmd, env) for name, cmd in commands.items()}
    print(
        f"\nControl plane on http://127.0.0.1:{port}/ (web, step and control workers, "
        "watchdog). Ctrl-C stops.\n",
        flush=True,
    )

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    backoff = {name: BACKOFF_FIRST for name in commands}
    started = {name: time.monotonic() for name in commands}
    restart_at: dict[str, float] = {}
    restarts = dict.fromkeys(commands, 0)
    while not stopping:
        now = time.monotonic()
        for name, proc in procs.items():
            if name in restart_at:
                if now >= restart_at[name]:
                    del restart_at[name]
                    restarts[name] += 1
                    procs[name] = _start(commands[name], env)
                    started[name] = time.monotonic()
                    print(
                        f"{name} restarted (pid {procs[name].pid}, restart {restarts[name]}).",
                        flush=True,
                    )
                continue
            if proc.poll() is None:
                continue
            if now - started[name] >= STABLE_SECONDS:
                backoff[name] = BACKOFF_FIRST
            delay = backoff[name]
            backoff[name] = min(BACKOFF_MAX, delay * 2)
            restart_at[name] = now + delay
            print(
                f"{name} (pid {proc.pid}) exited with {proc.returncode}; "
                f"restarting it in {delay:g}s.",
                flush=True,
            )
        time.sleep(0.2)
    print("Stopping web, worker and watchdog.", flush=True)
    for proc in procs.values():
        if proc.poll() is None:
            # The main process only: a Celery worker stops its own pool, which billiard then
            # counts as an orderly exit (a SIGTERM to the whole group made each pool child log
            # "ForkPoolWorker exited with signal 15" at ERROR). The group gets SIGKILL only
            # past the deadline below.
            os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    dev_settings.unlink(missing_ok=True)
    return 0


BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE_SECONDS = 60.0


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, preexec_fn=_child_setup)  # noqa: PLW1509


def _child_setup() -> None:
    """Its own session (a Ctrl-C reaches this runner, which stops the children in order), and
    SIGTERM should this runner die without stopping them."""
    os.setsid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


if __name__ == "__main__":
    sys.exit(main())
