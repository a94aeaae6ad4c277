"""A real HTTP receiver on loopback, in a thread of the test process."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each request with the next status of ``script`` (then 200), records it.

    ``hold`` set: the first request is held unanswered until ``release`` is set (a receiver
    in the middle of its work while the sender dies).
    """

    url: str = ""
    script: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    hold: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> int:
        with self.lock:
            return self.script.pop(0) if self.script else 200


def valid_signature(secret: str, received: Received) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received.headers.get("X-Controlplane-Signature", ""))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with state.lock:
                state.requests.append(Received(dict(self.headers.items()), body))
                first = len(state.requests) == 1
            if state.hold and first:
                state.release.wait(60)
            status = state.answer()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(f"answered {status}".encode())
            except OSError:
                pass  # the sender is gone

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/controlplane?src=test"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def webhook_settings(settings: Any) -> Any:
    settings.CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE = True
    settings.CONTROLPLANE_WEBHOOK_RETRY_BASE = 0.05
    settings.CONTROLPLANE_WEBHOOK_TIMEOUT = 2
    settings.CONTROLPLANE_WEBHOOK_MAX_TRIES = 8
    return settings
