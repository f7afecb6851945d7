"""``python -m edgewise.components.inference --root ROOT``: the inference component's process.

Started by the ``edgewise.ml.Inference`` recipe under the runtime's interpreter (``$EDGEWISE_PYTHON``). Logs go
to stdout (INFO) and stderr (WARNING and above), which the runtime writes to the component's log. SIGTERM stops
it cleanly; it exits 1 when it cannot reach the runtime's IPC server.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edgewise.components.inference.serving import InferenceComponent
from edgewise.components.process import configure_logging, connect_ipc, stop_on_signals

logger = logging.getLogger("edgewise.components.inference")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgewise.components.inference")
    parser.add_argument(
        "--root", required=True, type=Path, help="the runtime's root directory ({kernel:rootPath})"
    )
    args = parser.parse_args(argv)
    configure_logging()
    stop = threading.Event()
    stop_on_signals(stop.set, thread_name="inference-stop")
    # One executor thread: a model's messages are handled one at a time, in the order they arrive.
    client = connect_ipc(ThreadPoolExecutor(max_workers=1))
    if client is None:
        return 1
    component = InferenceComponent(client, args.root, thing=os.environ.get("AWS_IOT_THING_NAME"))
    try:
        component.start()
        logger.info("inference component running")
        stop.wait()
    finally:
        component.close()
        client.close(executor_wait=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
