"""Models trained outside Edgewise: an MLflow model (a directory with an ``MLmodel`` file) made into what
Edgewise's own versions hold, ``model.onnx`` and a ``result.json``, so that it packages and deploys alike.

Flavors converted: ``onnx`` (taken as it is), ``sklearn``, and ``lightgbm``/``xgboost`` models of their
scikit-learn API (``LGBMClassifier``, ``XGBRegressor``, ...), converted by ``edgewise.ml.export.to_onnx``.
A native ``Booster`` is refused: its task and classes are not in the model the way the scikit-learn API keeps
them. The task comes from the estimator (a classifier, a regressor, an outlier detector such as
IsolationForest or a GaussianMixture is an anomaly model), the feature names from the signature's input
columns (else ``f0``..``fN``), the input example from the one the notebook logged. A converted model must pass
the fidelity gate (``check_fidelity``) on the example rows and jittered copies of them, so the example is
required for every flavor but ``onnx``. An ONNX model keeps its graph; its single float input is renamed
``input`` (the name every Edgewise model takes) and its outputs are read by the names converters give them:
``label`` with ``probabilities`` (a classifier without ZipMap), ``label`` with ``scores`` (an anomaly
detector), or one float output (a regressor). Anything else is refused with a message saying what was found.

Loading a pickled model runs code from the model's files (MLflow's loaders are used, so
``MLFLOW_ALLOW_MODEL_CODE_EXECUTION=false`` refuses such models): only people trusted with the cloud should
write to its MLflow store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import yaml

from edgewise.ml.errors import ExportError, FidelityError
from edgewise.ml.registry import RESULT_FILE
from edgewise.protocol.model_package import MODEL_FILE

#: The file that makes a directory an MLflow model.
MLMODEL_FILE: Final = "MLmodel"
#: Flavors Edgewise converts, in the order one is chosen when a model has several.
FLAVORS: Final = ("onnx", "sklearn", "lightgbm", "xgboost")
#: Jittered copies of the example rows the fidelity gate also compares on.
JITTER_COPIES: Final = 4
#: Jitter: this fraction of each column's spread in the example (or of 1 where the column is constant).
JITTER_SCALE: Final = 0.05
#: How deep below the downloaded directory an ``MLmodel`` file is looked for.
_SEARCH_DEPTH: Final = 3
_MAX_EXAMPLE_ROWS: Final = 5
_NUMERIC_COLUMN_TYPES: Final = ("double", "float", "long", "integer", "boolean")
_KIND_TASK: Final = {"classifier": "classification", "regressor": "regression", "anomaly": "anomaly"}


@dataclass(frozen=True)
class MlflowModel:
    """An MLflow model directory and what its ``MLmodel`` file says."""

    directory: Path
    flavor: str
    flavor_conf: dict[str, Any]
    document: dict[str, Any]


def find_mlflow_model(directory: Path) -> Path | None:
    """The directory holding the ``MLmodel`` file: ``directory`` itself or one below it; None when there is none.

    Raises ``ExportError`` when several directories below hold one (which model is meant is not clear).
    """
    if (directory / MLMODEL_FILE).is_file():
        return directory
    found = sorted(
        path.parent
        for depth in range(1, _SEARCH_DEPTH + 1)
        for path in directory.glob("/".join(["*"] * depth) + "/" + MLMODEL_FILE)
        if path.is_file()
    )
    if len(found) > 1:
        listed = ", ".join(str(path.relative_to(directory)) for path in found)
        raise ExportError(f"{MLMODEL_FILE}: the version's files hold several MLflow models ({listed})")
    return found[0] if found else None


def read_mlflow_model(directory: Path) -> MlflowModel:
    """The ``MLmodel`` file of ``directory`` and the flavor Edgewise converts it by."""
    try:
        document = yaml.safe_load((directory / MLMODEL_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ExportError(f"{MLMODEL_FILE}: cannot be read: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("flavors"), dict):
        raise ExportError(f"{MLMODEL_FILE}: has no 'flavors' mapping")
    flavors: dict[str, Any] = document["flavors"]
    for flavor in FLAVORS:
        if isinstance(flavors.get(flavor), dict):
            return MlflowModel(directory, flavor, flavors[flavor], document)
    raise ExportError(
        f"{MLMODEL_FILE}.flavors: {sorted(flavors)} holds none Edgewise converts ({', '.join(FLAVORS)})"
    )


def convert_mlflow_model(directory: Path, destination: Path | None = None) -> dict[str, Any]:
    """Write ``model.onnx`` and ``result.json`` for the MLflow model in ``directory`` (or below it).

    They go into ``destination`` (default: ``directory``); returns the result written. Raises ``ExportError``
    naming what is missing or not convertible, ``FidelityError`` (an ``ExportError``) with the gate's reason.
    """
    model_dir = find_mlflow_model(directory)
    if model_dir is None:
        raise ExportError(f"{MLMODEL_FILE}: the version's files hold no MLflow model")
    model = read_mlflow_model(model_dir)
    if model.flavor == "onnx":
        onnx, result = _from_onnx(model)
    else:
        onnx, result = _from_native(model)
    target = destination or directory
    target.mkdir(parents=True, exist_ok=True)
    (target / MODEL_FILE).write_bytes(onnx)
    (target / RESULT_FILE).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


# -- native models ----------------------------------------------------------------------------------------


def _from_native(model: MlflowModel) -> tuple[bytes, dict[str, Any]]:
    from edgewise.ml.export import check_fidelity, learner_name, to_onnx

    model_class = str(model.flavor_conf.get("model_class", ""))
    if model_class.endswith("Booster"):
        raise ExportError(
            f"{MLMODEL_FILE}.flavors.{model.flavor}.model_class: {model_class} is a native Booster; log the "
            "scikit-learn API model instead (LGBMClassifier, XGBRegressor, ...) so its task and classes are known"
        )
    declared = _signature_columns(model)
    example = _example(model)
    if example is None:
        raise ExportError(
            f"input_example: the {model.flavor} model was logged without one; log it with input_example=X[:5] "
            "so that Edgewise can check its ONNX conversion against it"
        )
    rows, example_columns = example
    estimator = _load_native(model)
    task = _task_of(estimator)
    features = _feature_names(declared, example_columns, estimator, rows.shape[1])
    rows = _ordered(rows, example_columns, features)
    onnx, outputs = to_onnx(estimator, task, len(features))
    if task == "anomaly" and learner_name(estimator) != "GaussianMixture":
        # decision_function's own boundary: the native predict() flags a row below 0, i.e. an anomaly score
        # (score_sign -1) above 0.
        outputs = replace(outputs, threshold=0.0)
    checked = _with_jitter(rows)
    report = check_fidelity(estimator, onnx, outputs, checked, task)
    if not report.passed:
        raise FidelityError(
            f"fidelity: the ONNX conversion of {learner_name(estimator)} differs from the model (compared on "
            f"{report.rows} rows): {report.reason}"
        )
    result = _result(
        model, onnx, task=task, learner=learner_name(estimator), features=features, outputs=outputs, rows=rows
    )
    result["fidelity"] = report.to_json()
    return onnx, result


def _load_native(model: MlflowModel) -> Any:
    import importlib

    from mlflow.exceptions import MlflowException

    try:
        flavor_module: Any = importlib.import_module(f"mlflow.{model.flavor}")
        return flavor_module.load_model(str(model.directory))
    except ImportError as error:
        package = error.name or str(error)
        raise ExportError(
            f"{MLMODEL_FILE}.flavors.{model.flavor}: loading the model needs the package {package!r}, which the "
            "cloud does not have (for skops, log with serialization_format='cloudpickle' or install skops)"
        ) from error
    except MlflowException as error:
        raise ExportError(
            f"{MLMODEL_FILE}.flavors.{model.flavor}: cannot be loaded: {error.message}"
        ) from error
    except Exception as error:  # unpickling raises whatever the model's classes raise
        raise ExportError(
            f"{MLMODEL_FILE}.flavors.{model.flavor}: cannot be loaded: {type(error).__name__}: {error}"
        ) from error


def _task_of(estimator: Any) -> str:
    from sklearn.base import is_classifier, is_outlier_detector, is_regressor
    from sklearn.mixture import GaussianMixture

    from edgewise.ml.export.onnx import final_estimator

    final = final_estimator(estimator)
    if is_outlier_detector(final) or isinstance(final, GaussianMixture):
        return "anomaly"
    if is_classifier(final):
        return "classification"
    if is_regressor(final):
        return "regression"
    raise ExportError(
        f"model: {type(final).__name__} is neither a classifier, a regressor nor an outlier detector, so "
        "Edgewise cannot tell what its outputs mean"
    )


def _with_jitter(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The rows and ``JITTER_COPIES`` copies moved by a little noise (seeded, so a check is repeatable)."""
    spread = np.nanstd(rows, axis=0) if rows.shape[0] > 1 else np.zeros(rows.shape[1])
    scale = JITTER_SCALE * np.where(spread > 0, spread, 1.0)
    generator = np.random.default_rng(0)
    copies = [rows + generator.normal(size=rows.shape) * scale for _ in range(JITTER_COPIES)]
    return np.vstack([rows, *copies])


# -- ONNX models ------------------------------------------------------------------------------------------


def _from_onnx(model: MlflowModel) -> tuple[bytes, dict[str, Any]]:
    import onnx

    from edgewise.ml.export import INPUT_NAME

    data_file = model.directory / str(model.flavor_conf.get("data", MODEL_FILE))
    try:
        graph_model = onnx.load_model_from_string(data_file.read_bytes())
    except Exception as error:  # onnx raises DecodeError and others for a file it cannot parse
        raise ExportError(
            f"{MLMODEL_FILE}.flavors.onnx.data: {data_file.name} is not an ONNX model: {error}"
        ) from error
    graph = graph_model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = [item for item in graph.input if item.name not in initializers]
    if len(inputs) != 1:
        raise ExportError(
            f"onnx.inputs: the model takes {[item.name for item in inputs]}; Edgewise feeds one float tensor"
        )
    tensor = inputs[0].type.tensor_type
    if tensor.elem_type != onnx.TensorProto.FLOAT:
        kind = onnx.TensorProto.DataType.Name(tensor.elem_type)
        raise ExportError(f"onnx.inputs.{inputs[0].name}: is {kind}; Edgewise feeds float (float32) rows")
    dims = [dim.dim_value if dim.HasField("dim_value") else None for dim in tensor.shape.dim]
    if len(dims) != 2:
        raise ExportError(f"onnx.inputs.{inputs[0].name}: has shape {dims}; Edgewise feeds [rows, features]")
    outputs = _interpret_outputs(graph_model)
    _rename_input(graph, inputs[0].name, INPUT_NAME)
    onnx_bytes = graph_model.SerializeToString()
    declared = _signature_columns(model)
    example = _example(model)
    width = dims[1] or (len(declared) if declared else None) or (example[0].shape[1] if example else None)
    if width is None:
        raise ExportError(
            f"onnx.inputs.{inputs[0].name}: its width is not fixed, and neither a signature nor an input "
            "example says how many features it takes"
        )
    features = _feature_names(declared, example[1] if example else None, None, width)
    # No native model to compare with: the example only smoke-tests the package, so zeros do without one.
    rows = np.zeros((1, width)) if example is None else _ordered(example[0], example[1], features)
    result = _result(
        model,
        onnx_bytes,
        task=_KIND_TASK[outputs.kind],
        learner="onnx",
        features=features,
        outputs=outputs,
        rows=rows,
    )
    result["fidelity"] = None
    return onnx_bytes, result


def _interpret_outputs(graph_model: Any) -> Any:
    """The ``OutputSpec`` of an ONNX model, from its output names and types (see the module docstring)."""
    import onnx

    from edgewise.protocol.model_package import OutputSpec

    outputs = {item.name: item.type for item in graph_model.graph.output}
    described = ", ".join(f"{name} ({kind.WhichOneof('value')})" for name, kind in outputs.items())
    if "label" in outputs and "probabilities" in outputs:
        if outputs["probabilities"].WhichOneof("value") != "tensor_type":
            raise ExportError(
                "onnx.outputs.probabilities: is a sequence of maps (ZipMap); convert the classifier with "
                "options={'zipmap': False} so the probabilities are a tensor"
            )
        return OutputSpec(
            kind="classifier", label="label", probabilities="probabilities", classes=_classes(graph_model)
        )
    if "label" in outputs and "scores" in outputs:
        # skl2onnx's outlier detectors: label is -1/1 and scores is decision_function (higher = more normal).
        return OutputSpec(kind="anomaly", score="scores", score_sign=-1, threshold=0.0)
    floats = [
        name
        for name, kind in outputs.items()
        if kind.WhichOneof("value") == "tensor_type"
        and kind.tensor_type.elem_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)
    ]
    if len(outputs) == 1 and floats:
        return OutputSpec(kind="regressor", label=floats[0])
    raise ExportError(
        f"onnx.outputs: {described or 'none'}; Edgewise reads 'label' with 'probabilities' (a classifier), "
        "'label' with 'scores' (an anomaly detector) or one float output (a regressor)"
    )


def _classes(graph_model: Any) -> tuple[object, ...]:
    """The class labels the graph's classifier node declares (empty when none does)."""
    for node in graph_model.graph.node:
        for attribute in node.attribute:
            # Tree ensembles name the attribute classlabels_int64s, linear and SVM classifiers classlabels_ints.
            if attribute.name in ("classlabels_int64s", "classlabels_ints") and attribute.ints:
                return tuple(int(value) for value in attribute.ints)
            if attribute.name == "classlabels_strings" and attribute.strings:
                return tuple(value.decode("utf-8") for value in attribute.strings)
    return ()


def _rename_input(graph: Any, old: str, new: str) -> None:
    if old == new:
        return
    taken = {name for node in graph.node for name in (*node.input, *node.output)}
    if new in taken:
        raise ExportError(f"onnx.inputs.{old}: cannot be renamed {new!r}, the graph already uses that name")
    for item in graph.input:
        if item.name == old:
            item.name = new
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name == old:
                node.input[index] = new


# -- what both share --------------------------------------------------------------------------------------


def _signature_columns(model: MlflowModel) -> list[str] | None:
    """The input column names of the signature; None for a tensor signature or none at all."""
    signature = model.document.get("signature")
    if not isinstance(signature, dict) or not signature.get("inputs"):
        return None
    try:
        inputs = json.loads(signature["inputs"])
    except (TypeError, ValueError) as error:
        raise ExportError(f"{MLMODEL_FILE}.signature.inputs: is not JSON: {error}") from error
    if not isinstance(inputs, list) or not all(isinstance(item, dict) for item in inputs):
        raise ExportError(f"{MLMODEL_FILE}.signature.inputs: must be a list of column specs")
    if any(item.get("type") == "tensor" for item in inputs):
        return None
    names: list[str] = []
    for item in inputs:
        name = item.get("name")
        if not isinstance(name, str) or not name:
            return None
        if item.get("type") not in _NUMERIC_COLUMN_TYPES:
            raise ExportError(
                f"{MLMODEL_FILE}.signature.inputs: column {name!r} is {item.get('type')}; a device feeds numbers"
            )
        names.append(name)
    return names


def _example(model: MlflowModel) -> tuple[npt.NDArray[np.float64], list[str] | None] | None:
    """The logged input example as rows, with its column names when it was a DataFrame."""
    info = model.document.get("saved_input_example_info")
    if not isinstance(info, dict) or not info.get("artifact_path"):
        return None
    path = model.directory / str(info["artifact_path"])
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ExportError(f"input_example: {path.name} cannot be read as JSON: {error}") from error
    columns: list[str] | None = None
    if isinstance(data, dict) and isinstance(data.get("columns"), list) and "data" in data:
        columns = [str(column) for column in data["columns"]]
        data = data["data"]
    elif isinstance(data, dict) and "inputs" in data:
        data = data["inputs"]
    try:
        rows = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ExportError(f"input_example: {path.name} must hold rows of numbers ({error})") from error
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    if rows.ndim != 2 or rows.shape[0] == 0 or (columns is not None and len(columns) != rows.shape[1]):
        raise ExportError(f"input_example: {path.name} must hold rows of numbers, got shape {rows.shape}")
    return rows, columns


def _feature_names(
    declared: list[str] | None, example_columns: list[str] | None, estimator: Any, width: int
) -> list[str]:
    """The columns the model was fitted on, else the signature's, else the example's, else ``f0``..``fN``.

    The fitted order wins because that is the order the native model (and so its ONNX conversion) reads.
    """
    fitted = getattr(estimator, "feature_names_in_", None)
    fitted_names = None if fitted is None else [str(name) for name in fitted]
    if fitted_names is not None and declared is not None and sorted(fitted_names) != sorted(declared):
        raise ExportError(
            f"{MLMODEL_FILE}.signature.inputs: names {declared}, but the model was fitted on {fitted_names}"
        )
    for source, names in (
        ("model.feature_names_in_", fitted_names),
        (f"{MLMODEL_FILE}.signature.inputs", declared),
        ("input_example", example_columns),
    ):
        if names is None:
            continue
        if len(names) != width:
            raise ExportError(f"{source}: names {len(names)} columns, the model takes {width} features")
        return names
    return [f"f{index}" for index in range(width)]


def _ordered(
    rows: npt.NDArray[np.float64], columns: list[str] | None, features: list[str]
) -> npt.NDArray[np.float64]:
    """The example's columns in the order of ``features``."""
    if columns is None or columns == features:
        if rows.shape[1] != len(features):
            raise ExportError(
                f"input_example: rows have {rows.shape[1]} values, the model takes {len(features)}"
            )
        return rows
    missing = [feature for feature in features if feature not in columns]
    if missing:
        raise ExportError(f"input_example: has no column {missing[0]!r}")
    return rows[:, [columns.index(feature) for feature in features]]


def _result(
    model: MlflowModel,
    onnx: bytes,
    *,
    task: str,
    learner: str,
    features: list[str],
    outputs: Any,
    rows: npt.NDArray[np.float64],
) -> dict[str, Any]:
    """``result.json`` as Edgewise's training writes it, for what a notebook's model can tell."""
    from edgewise.ml.export import measure_latency

    finite = rows[np.isfinite(rows).all(axis=1)]
    return {
        "task": task,
        "learner": learner,
        "metric": "",
        "score": None,
        "features": features,
        "label": None,
        "classes": list(outputs.classes) or None,
        "outputs": outputs.to_json(),
        "latency": measure_latency(onnx, rows).to_json(),
        "sizeBytes": len(onnx),
        "leaderboard": [],
        "inputExample": finite[:_MAX_EXAMPLE_ROWS].tolist(),
        "reference": {},
        "source": {
            "format": "mlflow",
            "flavor": model.flavor,
            "modelClass": str(model.flavor_conf.get("model_class", "")) or None,
            "mlflowVersion": str(model.document.get("mlflow_version", "")) or None,
            "modelId": model.document.get("model_id"),
            "runId": model.document.get("run_id"),
        },
    }
