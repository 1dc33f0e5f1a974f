"""A real HTTP receiver on loopback, and an audience activated to it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from audiences.models import Activation, Destination, Profile, SegmentDefinition
from audiences.services.destinations import activation_set, destination_create
from tests.factories import make_definition, make_profile


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def changes(self) -> list[dict]:
        return self.json["changes"]


@dataclass
class Receiver:
    """Records every POST; answers `status` (or what `answer()` returns) after `delay` s."""

    url: str = ""
    status: int = 200
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    condition: threading.Condition = field(default_factory=threading.Condition)
    answer: Callable[[], int] | None = None

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        """Block until `count` requests arrived, at most `timeout` seconds (then fail)."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"the receiver got {len(self.requests)} of {count} requests "
                                f"within {timeout}s")
                self.condition.wait(left)
            return list(self.requests)

    def keys(self) -> list[str]:
        return [c["idempotencyKey"] for r in self.requests for c in r.json.get("changes", [])]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if receiver.delay:
                time.sleep(receiver.delay)
            status = receiver.answer() if receiver.answer else receiver.status
            with receiver.condition:
                receiver.requests.append(Received(dict(self.headers), body, time.monotonic()))
                receiver.condition.notify_all()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"receiver says no")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender gave up (timeout test)

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def receiver():
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/sift"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@dataclass
class Setup:
    destination: Destination
    definition: SegmentDefinition
    activation: Activation
    profiles: list[Profile]


def activated_webhook(receiver: Receiver, *, profiles: int = 2, name: str = "CRM hook"
                      ) -> Setup:
    """A streaming audience activated to a webhook at `receiver` (inside a sandbox scope)."""
    now = timezone.now()
    definition = make_definition(name=f"{name} audience", evaluation_continuous=True)
    destination = destination_create(name=name, kind="webhook", url=receiver.url, user=None,
                                     now=now)
    activation = activation_set(destination=destination, definition=definition,
                                namespace="Email", attributes=["person.name.firstName"],
                                user=None, now=now)
    people = [make_profile(attributes={"person": {"name": {"firstName": f"P{n}"}}})
              for n in range(profiles)]
    return Setup(destination, definition, activation, people)
