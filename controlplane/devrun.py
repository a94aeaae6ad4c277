"""``make run``: migrate, seed, then web + worker + watchdog together until Ctrl-C.

Embedded default unless DATABASE_URL / CELERY_BROKER_URL say otherwise. Every process is a
child of this one; Ctrl-C (or any child dying) stops them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    env = dict(os.environ)
    env.setdefault("DEBUG", "1")
    env.setdefault("CONTROLPLANE_STEP_DELAY", "1.5")
    env.setdefault("CONTROLPLANE_FAULT_INJECTION", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    py = sys.executable
    manage = [py, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run([*manage, "seed_demo"], cwd=ROOT, env=env, check=True)
    var = Path(env.get("CONTROLPLANE_VAR_DIR", ROOT / "var"))
    commands = {
        "web": [*manage, "runserver", "127.0.0.1:8000", "--noreload"],
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
        # Rollback, decommission and the watchdog never wait behind busy step slots.
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
    procs = {
        name: subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
        for name, cmd in commands.items()
    }
    print(
        "\nControl plane on http://127.0.0.1:8000/ (web, step and control workers, watchdog). "
        "Ctrl-C stops.\n",
        flush=True,
    )

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"{name} exited with {proc.returncode}; stopping the rest.", flush=True)
                code = proc.returncode or 1
                stopping = True
                break
        else:
            time.sleep(0.5)
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return code


if __name__ == "__main__":
    sys.exit(main())
