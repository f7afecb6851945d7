"""A registered model version as a model package's manifest, and the Greengrass component that ships it.

``build_manifest`` turns a version's ``result.json`` (what the training job wrote) and its ONNX bytes into the
``ModelManifest`` that ``edgewise.protocol.model_package.write_package`` signs: the payload fields the device
reads (from the training dataset's spec, or the model's feature names when it was trained on an uploaded
table), the window, the outputs, an input example and what the ONNX model answers to it, computed here with
the same ONNX Runtime settings the device uses. ``model_component_recipe`` is the recipe of the component
``edgewise.models.NAME`` version ``N.0.0`` whose artifacts are the package's files and whose Install step
verifies the package against the inference component's trusted keys, so a tampered package fails the
deployment. Signing keys are the cloud's business; they come in as arguments.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, Final

import numpy as np

from edgewise.ml.errors import ExportError, MlError
from edgewise.ml.names import check_ml_name
from edgewise.protocol.model_package import (
    MANIFEST_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    InputField,
    ModelManifest,
    OutputSpec,
    PackageError,
)

#: A model NAME is packaged as this component, version N as ``N.0.0``.
MODEL_COMPONENT_PREFIX: Final = "edgewise.models."
INFERENCE_COMPONENT: Final = "edgewise.ml.Inference"
INFERENCE_REQUIREMENT: Final = ">=1.0.0 <2.0.0"
#: The package's files, in the order the recipe lists them.
PACKAGE_FILES: Final = (MODEL_FILE, MANIFEST_FILE, SIGNATURE_FILE)
#: The Install step: the inference component's package check against the keys it trusts, exactly as
#: ``edgewise.components.inference.verify.INSTALL_SCRIPT`` documents it (a test holds the two equal).
VERIFY_COMMAND: Final = (
    '"$EDGEWISE_PYTHON" -m edgewise.components.inference.verify {artifacts:path} '
    "--keys '{edgewise.ml.Inference:configuration:/trustedKeys}'"
)
VERIFY_TIMEOUT_S: Final = 120
#: Libraries whose versions the manifest records (the ones that must agree for the outputs to match).
RUNTIME_LIBRARIES: Final = ("onnxruntime", "onnx", "numpy", "scikit-learn", "skl2onnx", "onnxmltools")
#: How many input example rows a manifest keeps.
MAX_EXAMPLE_ROWS: Final = 5
_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def component_name(model_name: str) -> str:
    """The component model ``model_name`` is packaged as."""
    return MODEL_COMPONENT_PREFIX + check_ml_name("name", model_name)


def component_version(version: str) -> str:
    """The component version MLflow's model version ``version`` is packaged as."""
    if not version.isdigit():
        raise ExportError(f"version: {version!r} is not a model version number")
    return f"{int(version)}.0.0"


def build_manifest(
    name: str,
    version: str,
    result: Mapping[str, Any],
    onnx: bytes,
    *,
    key_id: str,
    inputs: Sequence[InputField] | None = None,
    window: Mapping[str, object] | None = None,
    dataset_spec: Mapping[str, Any] | None = None,
    created: datetime | None = None,
) -> ModelManifest:
    """The manifest of model ``name`` version ``version`` from its ``result.json`` and ONNX bytes.

    The payload fields come from ``inputs`` and ``window`` (``WindowSpec.to_json()`` plus ``resampleMs``), or
    from ``dataset_spec`` (the training dataset's ``DatasetSpec.to_json()``), or, with neither, from the model's
    features (one row per message, each feature read from the payload key of its name). Raises
    ``ExportError`` naming the field when the result or the dataset cannot make a package.
    """
    from edgewise.ml.export import INPUT_NAME, onnx_session

    check_ml_name("name", name)
    component_version(version)
    features = _text_list(result.get("features"), "result.features")
    outputs = _outputs(result.get("outputs"))
    if dataset_spec is not None:
        if inputs is not None or window is not None:
            raise ExportError("dataset_spec: give either a dataset spec or inputs and window, not both")
        inputs, window = _from_dataset_spec(dataset_spec)
    elif inputs is None:
        if window is not None:
            raise ExportError("inputs: a window needs the payload fields it is computed over")
        inputs = [InputField(name=feature, path=_key_path(feature)) for feature in features]
    _check_features(features, inputs, window)
    example = _input_example(result.get("inputExample"), len(features))
    session = onnx_session(onnx)
    try:
        manifest = ModelManifest(
            name=name,
            version=version,
            task=str(result.get("task", "")),
            inputs=tuple(inputs),
            window=None if window is None else dict(window),
            feature_names=tuple(features),
            input_name=INPUT_NAME,
            outputs=outputs,
            input_example=example,
            example_output=example_output(session, outputs, example),
            files={MODEL_FILE: hashlib.sha256(onnx).hexdigest()},
            runtime=runtime_versions(),
            created=(created or datetime.now(UTC)).isoformat(timespec="seconds"),
            key_id=key_id,
        )
        ModelManifest.from_json(manifest.to_json())
    except PackageError as error:
        raise ExportError(f"manifest: {error}") from error
    return manifest


def example_output(
    session: Any, outputs: OutputSpec, example: Sequence[Sequence[float]]
) -> dict[str, object]:
    """What the ONNX model gives for the example rows, read by ``run_model``: ``{"labels": [...], "scores":
    [...], "probabilities": [[...], ...]}``, null where the model has no such output.

    The inference component's smoke test reads a model the same way and compares (within 1e-4, relative
    beyond 1) with this.
    """
    from edgewise.ml.export import run_model

    try:
        produced = run_model(session, outputs, np.asarray(example, dtype=np.float64))
    except ExportError:
        raise
    except Exception as error:  # onnxruntime raises its own unexported classes
        raise ExportError(f"result.inputExample: the ONNX model does not run on it: {error}") from error
    return {
        "labels": None if produced.labels is None else np.asarray(produced.labels).tolist(),
        "scores": None if produced.scores is None else np.asarray(produced.scores).tolist(),
        "probabilities": None
        if produced.probabilities is None
        else np.asarray(produced.probabilities).tolist(),
    }


def runtime_versions() -> dict[str, str]:
    """The installed versions of the libraries the outputs depend on (those installed)."""
    found = {}
    for library in RUNTIME_LIBRARIES:
        try:
            found[library] = metadata.version(library)
        except metadata.PackageNotFoundError:
            continue
    return found


def model_component_recipe(
    model_name: str, version: str, files: Mapping[str, str] | ModelManifest | None = None
) -> dict[str, Any]:
    """The recipe of component ``edgewise.models.NAME`` ``N.0.0`` shipping the package's files.

    ``files`` maps each package file name to its artifact URI. Left out (or given the package's manifest), the
    URIs are ``edgewise:models/NAME/N/FILE`` for ``model.onnx``, ``manifest.json``, ``manifest.json.sig`` and
    any extra file the manifest lists; the cloud matches artifacts by file name.
    """
    name = component_name(model_name)
    component = component_version(version)
    if files is None or isinstance(files, ModelManifest):
        extra = [] if files is None else [file for file in files.files if file not in PACKAGE_FILES]
        names = [*PACKAGE_FILES, *sorted(extra)]
        files = {file: f"edgewise:models/{model_name}/{int(version)}/{file}" for file in names}
    missing = [file for file in PACKAGE_FILES if file not in files]
    if missing:
        raise ExportError(f"files: the package's {missing[0]} has no artifact URI")
    for file, uri in files.items():
        if uri.rstrip("/").rsplit("/", 1)[-1] != file:
            raise ExportError(f"files.{file}: the artifact URI {uri!r} must end with the file name")
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": component,
        "ComponentDescription": f"Model {model_name} version {int(version)}: a signed ONNX package for "
        f"{INFERENCE_COMPONENT}.",
        "ComponentPublisher": "Edgewise",
        "ComponentDependencies": {
            INFERENCE_COMPONENT: {"VersionRequirement": INFERENCE_REQUIREMENT, "DependencyType": "SOFT"}
        },
        "Manifests": [
            {
                "Platform": {"os": "*"},
                "Artifacts": [{"Uri": uri, "Permission": {"Read": "OWNER"}} for uri in files.values()],
                "Lifecycle": {"Install": {"Script": VERIFY_COMMAND, "Timeout": VERIFY_TIMEOUT_S}},
            }
        ],
    }


def _outputs(data: object) -> OutputSpec:
    try:
        return OutputSpec.from_json(data, field="result.outputs")
    except PackageError as error:
        raise ExportError(str(error).removeprefix(f"{MANIFEST_FILE}: ")) from error


def _from_dataset_spec(spec: Mapping[str, Any]) -> tuple[list[InputField], dict[str, object] | None]:
    from edgewise.ml.datasets import DatasetSpec

    try:
        parsed = DatasetSpec.from_json(spec)
    except MlError as error:
        raise ExportError(f"dataset_spec: {error}") from error
    inputs = [InputField(name=field.name, path=field.path.text) for field in parsed.fields]
    if parsed.window is None:
        return inputs, None
    return inputs, {**parsed.window.to_json(), "resampleMs": parsed.resample_ms}


def _check_features(
    features: Sequence[str], inputs: Sequence[InputField], window: Mapping[str, object] | None
) -> None:
    """Every model feature must be something the device can compute from the payload fields."""
    names = [field.name for field in inputs]
    if not names:
        raise ExportError("inputs: at least one payload field is required")
    if window is None:
        computable = set(names)
        where = "a payload field"
    else:
        from edgewise.ml.features import WindowSpec

        try:
            spec = WindowSpec.from_json(window)
        except MlError as error:
            raise ExportError(f"window: {error}") from error
        computable = set(spec.feature_names(names))
        where = "a window feature of the payload fields"
    unknown = [feature for feature in features if feature not in computable]
    if unknown:
        raise ExportError(
            f"result.features: {unknown[0]!r} is not {where} ({', '.join(names)}), so a device cannot compute it"
        )


def _input_example(data: object, width: int) -> tuple[tuple[float, ...], ...]:
    if not isinstance(data, list):
        raise ExportError("result.inputExample: must be a list of rows")
    rows = []
    for index, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            raise ExportError(f"result.inputExample[{index}]: must be a list of {width} numbers")
        if not all(isinstance(value, int | float) and not isinstance(value, bool) for value in row):
            raise ExportError(f"result.inputExample[{index}]: must hold only numbers")
        # A row with a missing value cannot go into the manifest (JSON has no NaN); the others suffice.
        if all(np.isfinite(value) for value in row):
            rows.append(tuple(float(value) for value in row))
    if not rows:
        raise ExportError("result.inputExample: needs at least one row without missing values")
    return tuple(rows[:MAX_EXAMPLE_ROWS])


def _text_list(data: object, field: str) -> list[str]:
    if not isinstance(data, list) or not data or not all(isinstance(item, str) and item for item in data):
        raise ExportError(f"{field}: must be a non-empty list of names")
    return list(data)


def _key_path(name: str) -> str:
    """The JSON path of a top-level payload key (quoted when it is not a plain identifier)."""
    if _SIMPLE_KEY.fullmatch(name):
        return name
    return "['" + name.replace("\\", "\\\\").replace("'", "\\'") + "']"
