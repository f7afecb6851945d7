"""The cloud's API served by uvicorn on a free loopback port, in a thread of its own, for tests that talk to it
over HTTP (the CLI, an httpx client) from the test's thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from edgewise.cloud.listening import ServerWithoutSignals, bind
from tests.support.waiting import wait_until


@contextmanager
def served_api(application: FastAPI) -> Iterator[str]:
    """Serve ``application`` (from :func:`edgewise.cloud.app.create_app`) until the block ends; yields its base
    URL. Stops the server and disposes of the app's database engine on the way out."""
    sock = bind("127.0.0.1", 0)
    server = ServerWithoutSignals(
        uvicorn.Config(application, log_config=None, access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), what="uvicorn started")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        application.state.services.engine.dispose()
