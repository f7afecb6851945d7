"""The image classification component's configuration, with the keys of Greengrass's DLR image classification.

Greengrass's sample writes numbers as strings (``InferenceInterval: "3600"``); both strings and numbers are
taken. Keys:

- ``ImageDirectory``: the folder read (default: the component's work folder ``images``, created at start).
- ``ImageName``: one image in that folder; empty (the default) classifies every ``.pgm`` and ``.png`` file
  in it, in name order, at most ``MAX_IMAGES_PER_ROUND`` a round, hidden files (``.name``) skipped.
- ``InferenceInterval``: seconds between rounds (default 3600, as Greengrass).
- ``PublishResultsOnTopic``: the AWS IoT Core topic of the results; empty logs them only.
- ``Accelerator``: ``cpu`` (anything else is logged and runs on the CPU: ONNX Runtime here has no GPU).
- ``UseCamera``: not supported; ``true`` is logged and the folder is read as usual.
- ``MaxResults`` and ``ScoreThreshold`` (Edgewise additions, default 5 and 0.3: the sample's constants):
  at most that many classes, each with at least that probability, per result.
- ``ModelResourceKey`` is read by the recipe, not here: it names the model store's files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from edgewise.components.image_classification.errors import ImageClassificationConfigError
from edgewise.topics import TopicError, validate_topic

DEFAULT_INTERVAL_S: Final = 3600.0
DEFAULT_TOPIC: Final = "ml/onnx/image-classification"
DEFAULT_MAX_RESULTS: Final = 5
DEFAULT_SCORE_THRESHOLD: Final = 0.3
#: The shortest interval accepted: a busy loop would starve the device's other components.
MIN_INTERVAL_S: Final = 0.1
MAX_INTERVAL_S: Final = 7 * 86_400.0
#: The most images classified in one round; the rest wait for the next one.
MAX_IMAGES_PER_ROUND: Final = 100


@dataclass(frozen=True)
class ClassificationConfig:
    """What a round classifies, how often, and where the results go."""

    image_directory: Path
    image_name: str = ""
    interval_s: float = DEFAULT_INTERVAL_S
    topic: str = DEFAULT_TOPIC
    max_results: int = DEFAULT_MAX_RESULTS
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    accelerator: str = "cpu"
    use_camera: bool = False


def parse_config(value: Mapping[str, object], *, default_directory: Path) -> ClassificationConfig:
    """The configuration in ``value`` (the component's whole configuration); ``ImageClassificationConfigError``
    names the first key that cannot be used."""
    directory = _text(value, "ImageDirectory", "")
    name = _text(value, "ImageName", "")
    if name and (name in (".", "..") or "/" in name or "\\" in name):
        raise ImageClassificationConfigError("ImageName", f"{name!r} must be a file name, not a path")
    topic = _text(value, "PublishResultsOnTopic", DEFAULT_TOPIC)
    if topic:
        try:
            validate_topic(topic)
        except TopicError as error:
            raise ImageClassificationConfigError("PublishResultsOnTopic", str(error)) from None
    interval = _number(value, "InferenceInterval", DEFAULT_INTERVAL_S)
    if not MIN_INTERVAL_S <= interval <= MAX_INTERVAL_S:
        raise ImageClassificationConfigError(
            "InferenceInterval", f"{interval:g} s is not between {MIN_INTERVAL_S:g} and {MAX_INTERVAL_S:g}"
        )
    max_results = _number(value, "MaxResults", DEFAULT_MAX_RESULTS)
    if max_results != int(max_results) or not 1 <= max_results <= 1000:
        raise ImageClassificationConfigError("MaxResults", f"{max_results:g} is not a whole number 1..1000")
    threshold = _number(value, "ScoreThreshold", DEFAULT_SCORE_THRESHOLD)
    if not 0.0 <= threshold <= 1.0:
        raise ImageClassificationConfigError("ScoreThreshold", f"{threshold:g} is not between 0 and 1")
    return ClassificationConfig(
        image_directory=Path(directory) if directory else default_directory,
        image_name=name,
        interval_s=interval,
        topic=topic,
        max_results=int(max_results),
        score_threshold=threshold,
        accelerator=_text(value, "Accelerator", "cpu").lower(),
        use_camera=_text(value, "UseCamera", "false").lower() == "true",
    )


def _text(value: Mapping[str, object], key: str, default: str) -> str:
    item = value.get(key, default)
    if isinstance(item, bool):
        return "true" if item else "false"
    if not isinstance(item, str):
        raise ImageClassificationConfigError(key, f"must be a string, not {type(item).__name__}")
    return item


def _number(value: Mapping[str, object], key: str, default: float) -> float:
    item = value.get(key, default)
    if isinstance(item, bool) or not isinstance(item, int | float | str):
        raise ImageClassificationConfigError(key, f"must be a number, not {type(item).__name__}")
    try:
        number = float(item)
    except ValueError:
        raise ImageClassificationConfigError(key, f"{item!r} is not a number") from None
    if not math.isfinite(number):
        raise ImageClassificationConfigError(key, f"{item!r} is not a finite number")
    return number
