"""A loaded model: a verified package, its ONNX Runtime session (one thread, no spinning) and its input layout.

:func:`load_model` verifies the package (signature, manifest, digests), reads ``model.onnx`` checking its digest
again (the file is read once more after the check), opens the session with ``edgewise.ml.export.onnx_session``
and reads outputs with ``run_model``, the functions the cloud's fidelity gate uses, then smoke-tests the model:
the manifest's ``inputExample`` must give its ``exampleOutput`` within :data:`SMOKE_TOLERANCE` (relative beyond
1). ``exampleOutput`` is :func:`example_output` of the example's outputs:
``{"labels": [...], "scores": [...], "probabilities": [[...], ...]}``, a key null or absent when the model has no
such output; the cloud writes it with this same function.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgewise.components.inference.errors import ModelLoadError
from edgewise.components.inference.window import FloatArray, InputLayout
from edgewise.ml.errors import ExportError
from edgewise.protocol.model_package import MODEL_FILE, ModelManifest, verify_package

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from edgewise.ml.export.outputs import ModelOutputs

#: How far a smoke test's output may be from the manifest's ``exampleOutput`` (relative beyond 1).
SMOKE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to run; ``session`` is an ``onnxruntime.InferenceSession``."""

    manifest: ModelManifest
    package_dir: Path
    layout: InputLayout
    session: Any

    def predict(self, rows: FloatArray) -> list[dict[str, object]]:
        """The result fields of each row: ``label`` (the class value), ``score`` (its probability) and
        ``probabilities`` (per class) for a classifier, ``prediction`` for a regressor, ``score`` (+``anomaly``
        when the model has a threshold) for an anomaly detector."""
        from edgewise.ml.export.outputs import prediction_fields, run_model

        outputs = self.manifest.outputs
        produced = run_model(self.session, outputs, rows)
        return [prediction_fields(outputs, produced, index) for index in range(rows.shape[0])]


def load_model(package_dir: Path, trusted_keys: Sequence[Ed25519PublicKey]) -> LoadedModel:
    """Verify, load and smoke-test the package in ``package_dir``.

    Raises:
        PackageError: the package does not verify (``SignatureError`` for its signature).
        ModelLoadError: the model does not load, does not fit its manifest, or fails its smoke test.
    """
    from edgewise.ml.export.latency import onnx_session
    from edgewise.ml.export.outputs import run_model

    manifest = verify_package(package_dir, trusted_keys)
    onnx = (package_dir / MODEL_FILE).read_bytes()
    if hashlib.sha256(onnx).hexdigest() != manifest.files[MODEL_FILE]:
        raise ModelLoadError(
            f"{MODEL_FILE}: changed while it was being loaded; its SHA-256 no longer matches"
        )
    layout = InputLayout.from_manifest(manifest)
    try:
        session = onnx_session(onnx)
    except ExportError as error:
        raise ModelLoadError(f"{MODEL_FILE}: {error}") from None
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != manifest.input_name:
        names = [item.name for item in inputs]
        raise ModelLoadError(
            f"manifest.json: field 'inputName' is {manifest.input_name!r} but {MODEL_FILE} takes {names}"
        )
    width = inputs[0].shape[-1] if inputs[0].shape else None
    if isinstance(width, int) and width != len(manifest.feature_names):
        raise ModelLoadError(
            f"manifest.json: field 'featureNames' lists {len(manifest.feature_names)} features but {MODEL_FILE} "
            f"takes {width}"
        )
    try:
        actual = example_output(run_model(session, manifest.outputs, np.array(manifest.input_example)))
    except ExportError as error:
        raise ModelLoadError(f"{MODEL_FILE}: the input example does not run: {error}") from None
    problem = smoke_test_problem(manifest.example_output, actual)
    if problem is not None:
        raise ModelLoadError(f"smoke test: {problem}")
    return LoadedModel(manifest=manifest, package_dir=package_dir, layout=layout, session=session)


def example_output(outputs: ModelOutputs) -> dict[str, object]:
    """What a model gave for its input example, as the manifest's ``exampleOutput`` holds it."""
    return {
        "labels": None if outputs.labels is None else np.asarray(outputs.labels).tolist(),
        "scores": None if outputs.scores is None else np.asarray(outputs.scores).tolist(),
        "probabilities": None
        if outputs.probabilities is None
        else np.asarray(outputs.probabilities).tolist(),
    }


def smoke_test_problem(
    expected: Mapping[str, object], actual: Mapping[str, object], tolerance: float = SMOKE_TOLERANCE
) -> str | None:
    """Why ``actual`` is not ``expected`` (numbers within ``tolerance``), or None when it is."""
    for key in ("labels", "scores", "probabilities"):
        want = expected.get(key)
        if want is None:
            continue
        problem = _differs(want, actual.get(key), tolerance)
        if problem is not None:
            return f"{key}{problem}"
    return None


def _differs(expected: object, actual: object, tolerance: float) -> str | None:
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f": expected {len(expected)} values, got {_shown(actual)}"
        for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
            problem = _differs(want, got, tolerance)
            if problem is not None:
                return f"[{index}]{problem}"
        return None
    if _is_number(expected) and _is_number(actual):
        want, got = float(expected), float(actual)  # type: ignore[arg-type]
        if math.isclose(want, got, rel_tol=0, abs_tol=tolerance * max(1.0, abs(want))):
            return None
        return f": expected {want!r}, got {got!r} (tolerance {tolerance:g})"
    if expected == actual:
        return None
    return f": expected {_shown(expected)}, got {_shown(actual)}"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(value: object) -> str:
    return repr(value)[:60]
