"""The inference component's configuration, parsed once per version of it, with an error naming each bad field.

```yaml
trustedKeys: ["ed25519:..."]     # packages signed by none of these are refused
countersIntervalSeconds: 60       # how often the message counters are logged
models:
  anomaly:                        # the model's name in results
    component: edgewise.models.anomaly
    version: "3.0.0"              # its package: {root}/packages/artifacts/<component>/<version>/
    inputTopic: sensors/+/reading
    outputTopic: ml/anomaly/results
    iotCoreTopic: ""              # set: results also go to AWS IoT Core (QoS 1)
    passthrough: ["seq"]          # payload paths copied into each result's "passthrough"
    capture:                      # results written to a stream-manager stream for the cloud (all optional)
      stream: EdgewiseInferenceCapture
      sampleRate: 0.01            # share of results captured at random, 0..1
      scoreAbove: 0.9             # or null: results whose score is above this are captured
      disagreement: true          # results the challenger disagrees with are captured
    challenger:                   # another model version run in shadow on sampled rows
      component: edgewise.models.anomaly
      version: "4.0.0"
      sampleRate: 0.1             # share of rows it runs on, 0..1 (default 1)
      timeoutSeconds: 1           # a shadow result later than this after its message is not used
      tolerance: 0.1              # regressors and unthresholded scores agree within this (relative beyond 1)
    driftDetector:                # river's streaming detector on the score stream
      kind: adwin                 # or page-hinkley
      on: score
      topic: ml/anomaly/drift     # default ml/NAME/drift
      delta: 0.002                # adwin: confidence (default 0.002); page-hinkley: magnitude (0.005)
      threshold: 50               # page-hinkley only
```

Keys other than these at the top level (``accessControl``) are ignored; inside a model entry an unknown key is
an error, since it is almost always a misspelt one.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from edgewise.components.inference.errors import InferenceConfigError
from edgewise.ml.errors import DatasetError
from edgewise.ml.jsonpath import parse_path
from edgewise.names import COMPONENT_NAME
from edgewise.protocol.capture import DEFAULT_CAPTURE_STREAM
from edgewise.protocol.model_package import PackageError, parse_public_key
from edgewise.topics import TopicError, has_wildcards, validate_filter, validate_topic
from edgewise.versions import Version, VersionError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

DEFAULT_COUNTERS_INTERVAL_S = 60.0
MAX_MODELS = 64
MAX_PASSTHROUGH = 16
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_MODEL_KEYS = frozenset(
    {
        "component",
        "version",
        "inputTopic",
        "outputTopic",
        "iotCoreTopic",
        "passthrough",
        "capture",
        "challenger",
        "driftDetector",
    }
)
#: The stream captures go to when ``capture.stream`` is not set.
#: A stream-manager stream name, as the stream manager checks it.
_STREAM_NAME = re.compile(r"[\w ,.\-]{1,255}")
_CAPTURE_KEYS = frozenset({"stream", "sampleRate", "scoreAbove", "disagreement"})
_CHALLENGER_KEYS = frozenset({"component", "version", "sampleRate", "timeoutSeconds", "tolerance"})
_DETECTOR_KEYS = frozenset({"kind", "on", "topic", "delta", "threshold"})
DEFAULT_CHALLENGER_TIMEOUT_S = 1.0
DEFAULT_CHALLENGER_TOLERANCE = 0.1
#: river's defaults for each detector's ``delta``.
DEFAULT_DELTA = {"adwin": 0.002, "page-hinkley": 0.005}
DEFAULT_PAGE_HINKLEY_THRESHOLD = 50.0


@dataclass(frozen=True)
class CaptureConfig:
    """``capture``: which results are written, as capture records, to which stream-manager stream."""

    stream: str = DEFAULT_CAPTURE_STREAM
    sample_rate: float = 0.0
    score_above: float | None = None
    disagreement: bool = False


@dataclass(frozen=True)
class ChallengerConfig:
    """``challenger``: a second package run in shadow on a share of the rows; its output is never the result."""

    component: str
    version: str
    sample_rate: float = 1.0
    timeout_s: float = DEFAULT_CHALLENGER_TIMEOUT_S
    tolerance: float = DEFAULT_CHALLENGER_TOLERANCE

    def package_dir(self, root: Path) -> Path:
        return root / "packages" / "artifacts" / self.component / self.version


@dataclass(frozen=True)
class DriftDetectorConfig:
    """``driftDetector``: a river drift detector on the model's score stream, reporting on ``topic``."""

    kind: Literal["adwin", "page-hinkley"]
    topic: str
    on: Literal["score"] = "score"
    delta: float = DEFAULT_DELTA["adwin"]
    threshold: float = DEFAULT_PAGE_HINKLEY_THRESHOLD


@dataclass(frozen=True)
class ServedModelConfig:
    """One entry of ``models``: which package to serve, on which topics."""

    name: str
    component: str
    version: str
    input_topic: str
    output_topic: str
    iot_core_topic: str | None = None
    passthrough: tuple[str, ...] = ()
    capture: CaptureConfig | None = None
    challenger: ChallengerConfig | None = None
    drift_detector: DriftDetectorConfig | None = None

    def package_dir(self, root: Path) -> Path:
        """Where the runtime put the model component's artifacts: the package."""
        return root / "packages" / "artifacts" / self.component / self.version


@dataclass(frozen=True)
class InferenceConfig:
    """The whole configuration; ``trusted_keys`` are the key texts, :meth:`public_keys` the parsed keys."""

    trusted_keys: tuple[str, ...] = ()
    models: Mapping[str, ServedModelConfig] = field(default_factory=dict)
    counters_interval_s: float = DEFAULT_COUNTERS_INTERVAL_S

    def public_keys(self) -> list[Ed25519PublicKey]:
        return [parse_public_key(text) for text in self.trusted_keys]


def parse_config(data: object) -> InferenceConfig:
    """The configuration from the JSON value GetConfiguration returns; :class:`InferenceConfigError` if bad."""
    if not isinstance(data, Mapping):
        raise InferenceConfigError("(root)", "must be an object")
    keys = tuple(text for text, _ in parse_trusted_keys(data.get("trustedKeys", [])))
    interval = _interval(data.get("countersIntervalSeconds", DEFAULT_COUNTERS_INTERVAL_S))
    models_value = data.get("models")
    if models_value is None:
        models_value = {}
    if not isinstance(models_value, Mapping):
        raise InferenceConfigError("models", "must be an object of model name -> model entry")
    if len(models_value) > MAX_MODELS:
        raise InferenceConfigError("models", f"names {len(models_value)} models, more than {MAX_MODELS}")
    models = {str(name): _model(str(name), entry) for name, entry in models_value.items()}
    return InferenceConfig(trusted_keys=keys, models=models, counters_interval_s=interval)


def parse_trusted_keys(value: object, *, field: str = "trustedKeys") -> list[tuple[str, Ed25519PublicKey]]:
    """A list of ``ed25519:...`` key texts (or one text), each with its parsed key."""
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list):
        raise InferenceConfigError(field, 'must be a list of "ed25519:..." public keys')
    parsed = []
    for index, text in enumerate(texts):
        where = f"{field}[{index}]"
        if not isinstance(text, str):
            raise InferenceConfigError(where, f'must be an "ed25519:..." text, not {type(text).__name__}')
        try:
            parsed.append((text, parse_public_key(text)))
        except PackageError as error:
            raise InferenceConfigError(where, str(error)) from None
    return parsed


def _interval(value: object) -> float:
    try:
        seconds = (
            float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else -1.0
        )
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or not 0.1 <= seconds <= 86_400:
        raise InferenceConfigError(
            "countersIntervalSeconds", f"must be seconds from 0.1 to 86400, not {value!r}"
        )
    return seconds


def _model(name: str, entry: object) -> ServedModelConfig:
    where = f"models.{name}"
    if not _MODEL_NAME.fullmatch(name):
        raise InferenceConfigError(
            where, "a model name is 1-64 letters, digits, '_' or '-', starting alphanumeric"
        )
    if not isinstance(entry, Mapping):
        raise InferenceConfigError(
            where, "must be an object with component, version, inputTopic, outputTopic"
        )
    unknown = sorted(str(key) for key in entry if key not in _MODEL_KEYS)
    if unknown:
        raise InferenceConfigError(
            f"{where}.{unknown[0]}", f"is not a setting (known: {', '.join(sorted(_MODEL_KEYS))})"
        )
    component, version = _package(entry, where)
    input_topic = _text(entry, "inputTopic", where)
    output_topic = _text(entry, "outputTopic", where)
    try:
        validate_filter(input_topic)
    except TopicError as error:
        raise InferenceConfigError(f"{where}.inputTopic", str(error)) from None
    _topic(output_topic, f"{where}.outputTopic")
    iot_core = entry.get("iotCoreTopic")
    if iot_core is not None and not isinstance(iot_core, str):
        raise InferenceConfigError(f"{where}.iotCoreTopic", "must be a topic name, or empty for none")
    if iot_core:
        _topic(iot_core, f"{where}.iotCoreTopic")
    passthrough = entry.get("passthrough") or []
    if (
        not isinstance(passthrough, list)
        or len(passthrough) > MAX_PASSTHROUGH
        or not all(isinstance(path, str) and path for path in passthrough)
    ):
        raise InferenceConfigError(
            f"{where}.passthrough", f"must be a list of at most {MAX_PASSTHROUGH} payload paths"
        )
    for index, path in enumerate(passthrough):
        field_name = f"{where}.passthrough[{index}]"
        try:
            parse_path(path, field=field_name)
        except DatasetError as error:
            raise InferenceConfigError(field_name, str(error).removeprefix(f"{field_name}: ")) from None
    return ServedModelConfig(
        name=name,
        component=component,
        version=version,
        input_topic=input_topic,
        output_topic=output_topic,
        iot_core_topic=iot_core or None,
        passthrough=tuple(passthrough),
        capture=_capture(entry.get("capture"), f"{where}.capture"),
        challenger=_challenger(entry.get("challenger"), f"{where}.challenger"),
        drift_detector=_detector(entry.get("driftDetector"), f"{where}.driftDetector", name),
    )


def _section(value: object, where: str, keys: frozenset[str]) -> Mapping[object, object] | None:
    """An optional object setting: None when absent or null, its entries after checking every key is known."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InferenceConfigError(where, f"must be an object with {', '.join(sorted(keys))}")
    unknown = sorted(str(key) for key in value if key not in keys)
    if unknown:
        raise InferenceConfigError(
            f"{where}.{unknown[0]}", f"is not a setting (known: {', '.join(sorted(keys))})"
        )
    return value


def _capture(value: object, where: str) -> CaptureConfig | None:
    entry = _section(value, where, _CAPTURE_KEYS)
    if entry is None:
        return None
    stream = entry.get("stream", DEFAULT_CAPTURE_STREAM)
    if not isinstance(stream, str) or not _STREAM_NAME.fullmatch(stream):
        raise InferenceConfigError(
            f"{where}.stream",
            f"must be a stream name (1-255 letters, digits, spaces, ',', '.', '-' or '_'), not {stream!r}",
        )
    score_above = entry.get("scoreAbove")
    if score_above is not None:
        score_above = _number(score_above, f"{where}.scoreAbove", "a number, or null for none")
    disagreement = entry.get("disagreement", False)
    if not isinstance(disagreement, bool):
        raise InferenceConfigError(f"{where}.disagreement", f"must be true or false, not {disagreement!r}")
    return CaptureConfig(
        stream=stream,
        sample_rate=_rate(entry.get("sampleRate", 0.0), f"{where}.sampleRate"),
        score_above=score_above,
        disagreement=disagreement,
    )


def _challenger(value: object, where: str) -> ChallengerConfig | None:
    entry = _section(value, where, _CHALLENGER_KEYS)
    if entry is None:
        return None
    component, version = _package(entry, where)
    timeout = _number(
        entry.get("timeoutSeconds", DEFAULT_CHALLENGER_TIMEOUT_S),
        f"{where}.timeoutSeconds",
        "seconds above 0",
    )
    if timeout <= 0:
        raise InferenceConfigError(f"{where}.timeoutSeconds", f"must be seconds above 0, not {timeout!r}")
    tolerance = _number(
        entry.get("tolerance", DEFAULT_CHALLENGER_TOLERANCE), f"{where}.tolerance", "a number from 0"
    )
    if tolerance < 0:
        raise InferenceConfigError(f"{where}.tolerance", f"must be a number from 0, not {tolerance!r}")
    return ChallengerConfig(
        component=component,
        version=version,
        sample_rate=_rate(entry.get("sampleRate", 1.0), f"{where}.sampleRate"),
        timeout_s=timeout,
        tolerance=tolerance,
    )


def _detector(value: object, where: str, name: str) -> DriftDetectorConfig | None:
    entry = _section(value, where, _DETECTOR_KEYS)
    if entry is None:
        return None
    kind = entry.get("kind")
    if kind not in ("adwin", "page-hinkley"):
        raise InferenceConfigError(f"{where}.kind", f'must be "adwin" or "page-hinkley", not {kind!r}')
    on = entry.get("on", "score")
    if on != "score":
        raise InferenceConfigError(f"{where}.on", f'must be "score" (the only stream watched), not {on!r}')
    topic = entry.get("topic", f"ml/{name}/drift")
    if not isinstance(topic, str) or not topic:
        raise InferenceConfigError(f"{where}.topic", "must be a topic name")
    _topic(topic, f"{where}.topic")
    delta = _number(entry.get("delta", DEFAULT_DELTA[kind]), f"{where}.delta", "a number above 0")
    if delta <= 0 or (kind == "adwin" and delta >= 1):
        limit = "between 0 and 1" if kind == "adwin" else "above 0"
        raise InferenceConfigError(f"{where}.delta", f"must be a number {limit} for {kind}, not {delta!r}")
    threshold = entry.get("threshold")
    if threshold is not None and kind != "page-hinkley":
        raise InferenceConfigError(f"{where}.threshold", f"is a page-hinkley setting, not one of {kind}")
    threshold_value = _number(
        DEFAULT_PAGE_HINKLEY_THRESHOLD if threshold is None else threshold, f"{where}.threshold", "above 0"
    )
    if threshold_value <= 0:
        raise InferenceConfigError(f"{where}.threshold", f"must be a number above 0, not {threshold!r}")
    if importlib.util.find_spec("river") is None:
        raise InferenceConfigError(
            where, "needs the river package, which is not installed: pip install river"
        )
    return DriftDetectorConfig(kind=kind, topic=topic, delta=delta, threshold=threshold_value)


def _number(value: object, field_name: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InferenceConfigError(field_name, f"must be {what}, not {value!r}")
    return float(value)


def _rate(value: object, field_name: str) -> float:
    rate = _number(value, field_name, "a share from 0 to 1")
    if not 0.0 <= rate <= 1.0:
        raise InferenceConfigError(field_name, f"must be a share from 0 to 1, not {value!r}")
    return rate


def _package(entry: Mapping[object, object], where: str) -> tuple[str, str]:
    """The ``component`` and ``version`` of the model package ``entry`` names."""
    component = _text(entry, "component", where)
    if not COMPONENT_NAME.fullmatch(component) or component in (".", ".."):
        raise InferenceConfigError(f"{where}.component", f"{component!r} is not a component name")
    version = _text(entry, "version", where)
    try:
        Version.parse(version)
    except VersionError as error:
        raise InferenceConfigError(f"{where}.version", str(error)) from None
    return component, version


def _text(entry: Mapping[object, object], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise InferenceConfigError(f"{where}.{key}", "is required (a non-empty string)")
    return value


def _topic(topic: str, field_name: str) -> None:
    if has_wildcards(topic):
        raise InferenceConfigError(field_name, f"{topic!r} is a filter; results need a topic without + or #")
    try:
        validate_topic(topic)
    except TopicError as error:
        raise InferenceConfigError(field_name, str(error)) from None
