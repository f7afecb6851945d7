"""An ONNX image classifier from a model store: the model, its labels, and how an image becomes its input.

The model takes one float32 row of ``width x height`` pixel values (row-major) and outputs class probabilities
(the output named ``probabilities``, else the first float output of shape ``[N, classes]``). How an image
becomes that row travels inside the model, in the ONNX metadata entry ``edgewise.image``: a JSON object
``{"width": W, "height": H, "scale": S, "invert": B}``. The image's brightness (0 black .. 1 white) is
resized to W x H by area averaging (each output pixel is the mean of the source area it covers, fractions
included), inverted when ``invert`` is true (dark ink on light paper becomes high values), and multiplied by
``scale``. Without the entry the model is taken to read a square of its input size, brightness times 1.

The digits model of ``edgewise.ml.ImageClassification.ModelStore`` says ``{"width": 8, "height": 8,
"scale": 16, "invert": true}``: scikit-learn's digits are 8 x 8 counts (0..16) of inked pixels.

The labels file has one label per line, in the order of the model's probability columns.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from edgewise.components.image_classification.errors import ImageModelError

if TYPE_CHECKING:
    from edgewise.components.image_classification.images import Brightness

#: The ONNX metadata entry describing the model's image input.
IMAGE_METADATA_KEY: Final = "edgewise.image"
#: The largest labels file read.
MAX_LABELS_BYTES: Final = 1024 * 1024


@dataclass(frozen=True)
class ImageInput:
    """How an image becomes the model's input row (see the module docstring)."""

    width: int
    height: int
    scale: float = 1.0
    invert: bool = False

    def to_json(self) -> dict[str, object]:
        return {"width": self.width, "height": self.height, "scale": self.scale, "invert": self.invert}

    @classmethod
    def from_json(cls, data: Any, *, where: str) -> ImageInput:
        if not isinstance(data, dict):
            raise ImageModelError(f"{where}: {IMAGE_METADATA_KEY} must be a JSON object")
        width, height = data.get("width"), data.get("height")
        scale, invert = data.get("scale", 1.0), data.get("invert", False)
        for key, value in (("width", width), ("height", height)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 4096:
                raise ImageModelError(f"{where}: {IMAGE_METADATA_KEY}.{key} must be a whole number 1..4096")
        if not isinstance(scale, int | float) or isinstance(scale, bool) or not math.isfinite(scale):
            raise ImageModelError(f"{where}: {IMAGE_METADATA_KEY}.scale must be a finite number")
        if not isinstance(invert, bool):
            raise ImageModelError(f"{where}: {IMAGE_METADATA_KEY}.invert must be true or false")
        assert isinstance(width, int)
        assert isinstance(height, int)
        return cls(width=width, height=height, scale=float(scale), invert=invert)

    def row(self, brightness: Brightness) -> npt.NDArray[np.float32]:
        """The model's input row for an image of this ``brightness``: shape ``(1, width * height)``."""
        resized = area_resize(brightness, self.height, self.width)
        values = 1.0 - resized if self.invert else resized
        return (values * self.scale).astype(np.float32).reshape(1, -1)


def area_resize(image: Brightness, height: int, width: int) -> npt.NDArray[np.float64]:
    """``image`` resized to ``height x width``: each output pixel is the mean of the source area it covers."""
    return np.asarray(_area_weights(image.shape[0], height) @ image @ _area_weights(image.shape[1], width).T)


def _area_weights(source: int, target: int) -> npt.NDArray[np.float64]:
    """``target x source`` weights: row i holds how much of each source pixel output pixel i covers, summing to
    1. Output pixel i spans source coordinates [i·s/t, (i+1)·s/t)."""
    edges = np.arange(target + 1) * (source / target)
    starts, ends = edges[:-1, None], edges[1:, None]
    pixels = np.arange(source)[None, :]
    overlap = np.clip(np.minimum(ends, pixels + 1) - np.maximum(starts, pixels), 0.0, None)
    return np.asarray(overlap / (source / target))


@dataclass(frozen=True)
class Prediction:
    """One class and its probability."""

    label: str
    score: float


class ImageClassifier:
    """A loaded model and its labels; ``classify`` gives every class, most probable first."""

    def __init__(self, session: Any, labels: list[str], image_input: ImageInput, probabilities: str) -> None:
        self._session = session
        self._input_name = str(session.get_inputs()[0].name)
        self._probabilities = probabilities
        self.labels = labels
        self.image_input = image_input

    @classmethod
    def load(cls, model: Path, labels: Path) -> ImageClassifier:
        """Load the ONNX ``model`` and the ``labels`` file; ``ImageModelError`` names the file and the problem."""
        from edgewise.ml.errors import ExportError
        from edgewise.ml.export.latency import onnx_session

        names = read_labels(labels)
        try:
            session = onnx_session(model.read_bytes())
        except OSError as error:
            raise ImageModelError(f"{model.name}: cannot be read ({error.strerror or error})") from error
        except ExportError as error:
            raise ImageModelError(f"{model.name}: does not load in ONNX Runtime ({error})") from error
        inputs = session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 2 or not isinstance(inputs[0].shape[1], int):
            raise ImageModelError(f"{model.name}: must take one input of shape [N, pixels]")
        pixels = int(inputs[0].shape[1])
        image_input = _image_input(session, pixels, model.name)
        if image_input.width * image_input.height != pixels:
            raise ImageModelError(
                f"{model.name}: {IMAGE_METADATA_KEY} says {image_input.width}x{image_input.height} pixels, "
                f"the model takes {pixels}"
            )
        probabilities = _probabilities_output(session, model.name)
        classifier = cls(session, names, image_input, probabilities)
        columns = classifier.probabilities(np.zeros((1, pixels), dtype=np.float32)).shape[1]
        if columns != len(names):
            raise ImageModelError(
                f"{labels.name}: has {len(names)} labels, the model {model.name} outputs {columns} classes"
            )
        return classifier

    def probabilities(self, rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """The class probabilities of input ``rows`` (already preprocessed), one column per label."""
        (values,) = self._session.run([self._probabilities], {self._input_name: rows})
        return np.asarray(values, dtype=np.float64)

    def classify(self, brightness: Brightness) -> list[Prediction]:
        """Every class for the image of this ``brightness``, most probable first."""
        scores = self.probabilities(self.image_input.row(brightness))[0]
        order = np.argsort(-scores, kind="stable")
        return [Prediction(label=self.labels[index], score=float(scores[index])) for index in order]


def read_labels(path: Path) -> list[str]:
    """The labels in ``path``, one a line (trailing blank lines ignored); ``ImageModelError`` when unusable."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_LABELS_BYTES + 1)
    except OSError as error:
        raise ImageModelError(f"{path.name}: cannot be read ({error.strerror or error})") from error
    if len(data) > MAX_LABELS_BYTES:
        raise ImageModelError(f"{path.name}: larger than {MAX_LABELS_BYTES} bytes")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise ImageModelError(f"{path.name}: is not UTF-8 text") from None
    while lines and not lines[-1].strip():
        lines.pop()
    labels = [line.strip() for line in lines]
    if not labels:
        raise ImageModelError(f"{path.name}: holds no labels")
    if any(not label for label in labels):
        raise ImageModelError(f"{path.name}: line {labels.index('') + 1} is empty")
    return labels


def _image_input(session: Any, pixels: int, where: str) -> ImageInput:
    text = session.get_modelmeta().custom_metadata_map.get(IMAGE_METADATA_KEY)
    if text is None:
        side = math.isqrt(pixels)
        if side * side != pixels:
            raise ImageModelError(
                f"{where}: has no {IMAGE_METADATA_KEY} metadata and its {pixels} inputs are not a square image"
            )
        return ImageInput(width=side, height=side)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ImageModelError(f"{where}: {IMAGE_METADATA_KEY} metadata is not JSON") from None
    return ImageInput.from_json(data, where=where)


def _probabilities_output(session: Any, where: str) -> str:
    outputs = session.get_outputs()
    for output in outputs:
        if output.name == "probabilities":
            return str(output.name)
    for output in outputs:
        if output.type == "tensor(float)" and len(output.shape) == 2:
            return str(output.name)
    raise ImageModelError(f"{where}: has no class probabilities output (a float tensor [N, classes])")
