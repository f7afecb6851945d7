"""Rounds of classification: every ``InferenceInterval`` seconds, the configured images in, one result each out.

:func:`classify_round` is everything but IPC: it reads the round's images, classifies them and builds one
result per image, shaped like Greengrass's sample (the keys ``timestamp``, ``inference-type``,
``inference-description`` and ``inference-results``, a list of ``{"Label", "Score"}`` with the score as a
string, most probable first), plus ``image``, the file name, since a round may read many images. An image
that cannot be read is logged and skipped; the round goes on.

:class:`ImageClassificationComponent` wires it to the awsiotsdk V2 client: GetConfiguration for the
configuration, SubscribeToConfigurationUpdate to follow it (an update starts a round at once, as the sample
does), and PublishToIoTCore (QoS 1) for each result, which is also logged.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgewise.components.image_classification.classifier import ImageClassifier
from edgewise.components.image_classification.config import (
    MAX_IMAGES_PER_ROUND,
    ClassificationConfig,
    parse_config,
)
from edgewise.components.image_classification.errors import ImageClassificationConfigError, ImageError
from edgewise.components.image_classification.images import IMAGE_SUFFIXES, read_image_file

logger = logging.getLogger(__name__)

#: Seconds to wait before reading the configuration again after it could not be used.
RETRY_S = 5.0


def round_images(config: ClassificationConfig) -> list[Path]:
    """The images a round reads: ``ImageName`` alone, or the folder's PGM and PNG files in name order."""
    directory = config.image_directory
    if config.image_name:
        return [directory / config.image_name]
    try:
        entries = sorted(directory.iterdir())
    except OSError as error:
        logger.error("ImageDirectory %s cannot be listed: %s", directory, error.strerror or error)
        return []
    images = [
        path
        for path in entries
        if not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    ]
    if len(images) > MAX_IMAGES_PER_ROUND:
        logger.warning(
            "ImageDirectory %s holds %d images; this round classifies the first %d",
            directory,
            len(images),
            MAX_IMAGES_PER_ROUND,
        )
    return images[:MAX_IMAGES_PER_ROUND]


def classify_round(classifier: ImageClassifier, config: ClassificationConfig) -> list[dict[str, object]]:
    """One result per readable image of the round (see the module docstring for their shape)."""
    results: list[dict[str, object]] = []
    for path in round_images(config):
        try:
            predictions = classifier.classify(read_image_file(path))
        except ImageError as error:
            logger.error("image skipped: %s", error)
            continue
        kept = [p for p in predictions if p.score >= config.score_threshold][: config.max_results]
        results.append(
            {
                "timestamp": str(datetime.now(tz=UTC)),
                "inference-type": "image-classification",
                "inference-description": (
                    f"Top {config.max_results} predictions with score {config.score_threshold:g} or above "
                ),
                "inference-results": [{"Label": p.label, "Score": str(p.score)} for p in kept],
                "image": path.name,
            }
        )
    return results


class ImageClassificationComponent:
    """The component's loop: configuration from IPC, rounds on time or on a configuration update."""

    def __init__(self, client: Any, classifier: ImageClassifier, *, default_directory: Path) -> None:
        self._client = client
        self._classifier = classifier
        self._default_directory = default_directory
        self._wake = threading.Event()
        self._stop = False
        self._warned: set[str] = set()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the image it is on."""
        self._stop = True
        self._wake.set()

    def run(self) -> None:
        """Classify rounds until :meth:`stop`."""
        self._client.subscribe_to_configuration_update(
            key_path=[], on_stream_event=self._on_configuration_update, on_stream_error=self._on_stream_error
        )
        self._default_directory.mkdir(parents=True, exist_ok=True)
        while not self._stop:
            config = self._read_config()
            if config is not None:
                self._warn_unsupported(config)
                for result in classify_round(self._classifier, config):
                    if self._stop:
                        return
                    self._publish(config.topic, result)
            self._wake.wait(config.interval_s if config is not None else RETRY_S)
            self._wake.clear()

    def _read_config(self) -> ClassificationConfig | None:
        try:
            response = self._client.get_configuration(key_path=[])
            return parse_config(response.value or {}, default_directory=self._default_directory)
        except ImageClassificationConfigError as error:
            logger.error("configuration refused, retrying in %g s: %s", RETRY_S, error)
        except Exception as error:
            logger.error("configuration not read, retrying in %g s: %r", RETRY_S, error)
        return None

    def _warn_unsupported(self, config: ClassificationConfig) -> None:
        for key, unsupported in (
            ("Accelerator", config.accelerator != "cpu"),
            ("UseCamera", config.use_camera),
            ("PublishResultsOnTopic", not config.topic),
        ):
            if unsupported and key not in self._warned:
                self._warned.add(key)
                message = {
                    "Accelerator": f"Accelerator {config.accelerator!r} is not available; running on the CPU",
                    "UseCamera": "UseCamera is not supported; reading ImageDirectory",
                    "PublishResultsOnTopic": "PublishResultsOnTopic is empty; results are only logged",
                }[key]
                logger.warning("%s", message)

    def _on_configuration_update(self, event: Any) -> None:
        self._wake.set()

    def _on_stream_error(self, error: Exception) -> bool:
        logger.error("IPC stream error: %r", error)
        return False  # keep the stream open

    def _publish(self, topic: str, result: dict[str, object]) -> None:
        text = json.dumps(result)
        logger.info("%s", text)
        if not topic:
            return
        from awsiot.greengrasscoreipc.model import QOS

        try:
            self._client.publish_to_iot_core(topic_name=topic, qos=QOS.AT_LEAST_ONCE, payload=text.encode())
        except Exception as error:
            logger.error("result for %s not published to %s: %r", result.get("image"), topic, error)
