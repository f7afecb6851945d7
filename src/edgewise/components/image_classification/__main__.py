"""``python -m edgewise.components.image_classification``: the image classification component's process.

Started by the ``edgewise.ml.ImageClassification`` recipe under the runtime's interpreter
(``$EDGEWISE_PYTHON``) with the model store's files. Logs go to stdout (INFO) and stderr (WARNING and above),
which the runtime writes to the component's log. SIGTERM stops it after the image it is on; it exits 1 when
the model cannot be loaded or the runtime's IPC server cannot be reached.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from edgewise.components.image_classification.classifier import ImageClassifier
from edgewise.components.image_classification.errors import ImageModelError
from edgewise.components.image_classification.service import ImageClassificationComponent

logger = logging.getLogger("edgewise.components.image_classification")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgewise.components.image_classification")
    parser.add_argument("--model", required=True, type=Path, help="the ONNX model file of the model store")
    parser.add_argument("--labels", required=True, type=Path, help="the labels file, one label a line")
    parser.add_argument(
        "--default-image-directory",
        required=True,
        type=Path,
        help="the folder read when ImageDirectory is not configured ({work:path}/images)",
    )
    args = parser.parse_args(argv)
    _configure_logging()
    try:
        classifier = ImageClassifier.load(args.model, args.labels)
    except ImageModelError as error:
        logger.error("model not loaded: %s", error)
        return 1
    image = classifier.image_input
    logger.info(
        "model %s loaded: %d labels, input %dx%d",
        args.model.name,
        len(classifier.labels),
        image.width,
        image.height,
    )
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

    try:
        client = GreengrassCoreIPCClientV2()
    except Exception as error:
        logger.error("cannot connect to the runtime's IPC server: %s", error)
        return 1
    component = ImageClassificationComponent(
        client, classifier, default_directory=args.default_image_directory
    )

    def request_stop(signum: int, frame: FrameType | None) -> None:
        # Setting the wake event takes its lock, which the interrupted main thread may hold: another thread sets it.
        threading.Thread(target=component.stop, name="image-classification-stop").start()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        logger.info("image classification component running")
        component.run()
    finally:
        client.close()
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
