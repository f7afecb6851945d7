"""``python -m edgewise.components.image_classification``: the image classification component's process.

Started by the ``edgewise.ml.ImageClassification`` recipe under the runtime's interpreter
(``$EDGEWISE_PYTHON``) with the model store's files. Logs go to stdout (INFO) and stderr (WARNING and above),
which the runtime writes to the component's log. SIGTERM stops it after the image it is on; it exits 1 when
the model cannot be loaded or the runtime's IPC server cannot be reached.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from edgewise.components.image_classification.classifier import ImageClassifier
from edgewise.components.image_classification.errors import ImageModelError
from edgewise.components.image_classification.service import ImageClassificationComponent
from edgewise.components.process import configure_logging, connect_ipc, stop_on_signals

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
    configure_logging()
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
    client = connect_ipc()
    if client is None:
        return 1
    component = ImageClassificationComponent(
        client, classifier, default_directory=args.default_image_directory
    )
    stop_on_signals(component.stop, thread_name="image-classification-stop")
    try:
        logger.info("image classification component running")
        component.run()
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
