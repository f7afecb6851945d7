"""Real model packages for the inference component's tests: a tiny scikit-learn classifier exported with skl2onnx
and signed with a test Ed25519 key through ``write_package``, the way the cloud does it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgewise.components.inference.model import example_output
from edgewise.ml.export.latency import onnx_session
from edgewise.ml.export.outputs import run_model
from edgewise.protocol.model_package import InputField, ModelManifest, OutputSpec, write_package

#: The one test signing key (fixed, so that every test and every process agrees on it).
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
CLASSES = ("cool", "hot")
OUTPUTS = OutputSpec(kind="classifier", label="label", probabilities="probabilities", classes=CLASSES)
INPUTS = (InputField("temp", "$.sensors.temp"), InputField("hum", "hum"))


def hot_classifier(threshold: float, *, indexed: bool = False) -> bytes:
    """ONNX of a logistic regression that says ``hot`` when ``temp`` is above ``threshold`` (``hum`` is noise);
    ``indexed``: trained on class indices (0 cool, 1 hot), as the training pipeline does."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    temp = rng.uniform(0, 50, 400)
    features = np.column_stack([temp, rng.uniform(20, 80, 400)]).astype(np.float32)
    labels = (temp > threshold).astype(np.int64) if indexed else np.where(temp > threshold, "hot", "cool")
    model = LogisticRegression(C=100.0, max_iter=1000).fit(features, labels)
    onnx = to_onnx(
        model,
        initial_types=[("input", FloatTensorType([None, 2]))],
        options={id(model): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return bytes(onnx.SerializeToString())


def manifest_for(
    onnx: bytes,
    *,
    name: str = "hot",
    version: str = "1",
    window: Mapping[str, object] | None = None,
    feature_names: tuple[str, ...] = ("temp", "hum"),
    example: tuple[tuple[float, ...], ...] = ((5.0, 50.0), (45.0, 50.0)),
) -> ModelManifest:
    """A manifest whose ``exampleOutput`` is what ``onnx`` gives for ``example``."""
    given = run_model(onnx_session(onnx), OUTPUTS, np.array(example))
    return ModelManifest(
        name=name,
        version=version,
        task="classification",
        inputs=INPUTS,
        window=dict(window) if window is not None else None,
        feature_names=feature_names,
        input_name="input",
        outputs=OUTPUTS,
        input_example=example,
        example_output=example_output(given),
        runtime={"onnxruntime": "test"},
        created="2026-12-07T09:00:00+00:00",
    )


def write_hot_package(
    directory: Path, onnx: bytes, *, version: str = "1", **manifest: object
) -> ModelManifest:
    """A signed package of ``onnx`` in ``directory``."""
    made = manifest_for(onnx, version=version, **manifest)  # type: ignore[arg-type]
    return write_package(directory, manifest=made, onnx=onnx, private_key=KEY)
