"""``python -m edgewise.components.inference --root ROOT``: the inference component's process.

Started by the ``edgewise.ml.Inference`` recipe under the runtime's interpreter (``$EDGEWISE_PYTHON``). Logs go
to stdout (INFO) and stderr (WARNING and above), which the runtime writes to the component's log. SIGTERM stops
it cleanly; it exits 1 when it cannot reach the runtime's IPC server.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

from edgewise.components.inference.serving import InferenceComponent

logger = logging.getLogger("edgewise.components.inference")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgewise.components.inference")
    parser.add_argument(
        "--root", required=True, type=Path, help="the runtime's root directory ({kernel:rootPath})"
    )
    args = parser.parse_args(argv)
    _configure_logging()
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        # One executor thread: a model's messages are handled one at a time, in the order they arrive.
        client = GreengrassCoreIPCClientV2(executor=ThreadPoolExecutor(max_workers=1))
    except Exception as error:
        logger.error("cannot connect to the runtime's IPC server: %s", error)
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


def _configure_logging() -> None:
    formatter = logging.Formatter("%(levelname)s %(message)s")
    out = logging.StreamHandler(sys.stdout)
    out.setFormatter(formatter)
    out.addFilter(lambda record: record.levelno < logging.WARNING)
    err = logging.StreamHandler(sys.stderr)
    err.setFormatter(formatter)
    err.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.handlers[:] = [out, err]
    root.setLevel(logging.INFO)


if __name__ == "__main__":
    sys.exit(main())
