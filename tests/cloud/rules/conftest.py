"""Fixtures of the rules tests: a migrated SQLite store with thing ``A``, and a local HTTP server that records
what it is sent and answers with a status the test chooses."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.db import create_database_engine, create_session_factory, upgrade_database
from edgewise.cloud.registry import service as registry


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A migrated SQLite store in which thing ``A`` is registered."""
    url = f"sqlite:///{tmp_path / 'edgewise.db'}"
    upgrade_database(url)
    engine = create_database_engine(url)
    factory = create_session_factory(engine)
    with factory() as session:
        registry.create_thing(session, "A")
    yield factory
    engine.dispose()


@dataclass(frozen=True)
class Received:
    """One request the HTTP receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """A local HTTP server: ``requests`` it got, answering ``status`` (and ``location`` for redirects)."""

    url: str
    status: int = 200
    location: str = ""
    requests: list[Received] = field(default_factory=list)
    #: Cleared, requests wait (at most 30 s) until it is set before being answered.
    answering: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.answering.set()


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            with lock:
                receiver.requests.append(
                    Received(self.path, {key.lower(): value for key, value in self.headers.items()}, body)
                )
            receiver.answering.wait(30)
            self.send_response(receiver.status)
            if receiver.location:
                self.send_header("Location", receiver.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
