"""The signed model package: the files a trained model travels in, from the cloud's registry to a device.

A package is a directory of three or more files:

- ``model.onnx``: the model (and any extra file the manifest lists, e.g. drift references);
- ``manifest.json``: a :class:`ModelManifest` (camelCase JSON, ``"format": "edgewise.model/1"``) saying what the
  model reads (payload fields, window), what it outputs, an input example with the output it must give, and the
  SHA-256 of every other file;
- ``manifest.json.sig``: base64 of the Ed25519 signature over ``manifest.json``'s exact bytes.

The cloud writes packages with :func:`write_package`; a device checks one with :func:`verify_package` before it
loads anything: the signature first (against the keys the device trusts), then the manifest's fields, then every
listed file's digest. A failure raises :class:`SignatureError` or :class:`PackageError` with a message naming the
file or the manifest field. Only the standard library and ``cryptography`` are used, so the check runs on a
device without the ML libraries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Literal, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edgewise.errors import EdgewiseError

PACKAGE_FORMAT = "edgewise.model/1"
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.json.sig"
KEY_PREFIX = "ed25519:"
#: Tasks a manifest may name (the values of ``edgewise.ml.training.Task``).
TASKS = ("classification", "regression", "anomaly", "forecast")
OUTPUT_KINDS = ("classifier", "regressor", "anomaly")

OutputKind = Literal["classifier", "regressor", "anomaly"]

# The same rule as edgewise.ml.names.ML_NAME_PATTERN; protocol may not import edgewise.ml.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]{0,63}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_MAX_TEXT = 1024
_MAX_ITEMS = 10_000
_SIGNATURE_BYTES = 64
_PUBLIC_KEY_BYTES = 32
_CHUNK = 1024 * 1024


class ModelPackageError(EdgewiseError):
    """A model package that cannot be used: a malformed manifest, a missing file or a digest mismatch."""


class ModelSignatureError(ModelPackageError):
    """A package whose signature is missing, malformed, or verifies against none of the trusted keys."""


# The short names the design uses; the classes carry longer ones because the runtime's deployment errors and the
# cloud's URL signing already define a PackageError and a SignatureError (error names are unique project-wide).
PackageError = ModelPackageError
SignatureError = ModelSignatureError


@dataclass(frozen=True)
class InputField:
    """One payload field the model reads: its column name and its JSON path (``edgewise.ml.jsonpath``)."""

    name: str
    path: str


@dataclass(frozen=True)
class OutputSpec:
    """Which ONNX outputs hold what. ``label``/``probabilities``/``score`` are ONNX output names."""

    kind: OutputKind
    label: str | None = None  #: labels (classifier) or predictions (regressor)
    probabilities: str | None = None  #: class probabilities (classifier)
    score: str | None = None  #: the raw score (anomaly)
    score_sign: int = 1  #: anomaly score = score_sign * raw score, so that higher is more anomalous
    #: anomalous when the anomaly score is above it; for a binary classifier, its second class when that
    #: class's probability is above it (else the class of the highest probability)
    threshold: float | None = None
    classes: tuple[object, ...] = ()  #: class values, in the order of the probability columns

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "label": self.label,
            "probabilities": self.probabilities,
            "score": self.score,
            "scoreSign": self.score_sign,
            "threshold": self.threshold,
            "classes": list(self.classes),
        }

    @classmethod
    def from_json(cls, data: object, *, field: str = "outputs") -> OutputSpec:
        obj = _object(data, field)
        kind = _text(obj, "kind", field)
        if kind not in OUTPUT_KINDS:
            raise _field_error(f"{field}.kind", f"must be one of {', '.join(OUTPUT_KINDS)}, not {kind!r}")
        label = _optional_text(obj, "label", field)
        probabilities = _optional_text(obj, "probabilities", field)
        score = _optional_text(obj, "score", field)
        sign = obj.get("scoreSign", 1)
        if isinstance(sign, bool) or sign not in (1, -1):
            raise _field_error(f"{field}.scoreSign", f"must be 1 or -1, not {sign!r}")
        threshold = obj.get("threshold")
        if threshold is not None:
            threshold = _number(threshold, f"{field}.threshold")
        classes_value = obj.get("classes", [])
        if not isinstance(classes_value, list) or len(classes_value) > _MAX_ITEMS:
            raise _field_error(f"{field}.classes", f"must be a list of at most {_MAX_ITEMS} values")
        for index, value in enumerate(classes_value):
            if not isinstance(value, (str, int, float)):
                raise _field_error(f"{field}.classes[{index}]", "must be a string, a number or a boolean")
        if kind in ("classifier", "regressor") and label is None:
            raise _field_error(f"{field}.label", f"is required for a {kind}")
        if kind == "anomaly" and score is None:
            raise _field_error(f"{field}.score", "is required for an anomaly model")
        return cls(
            kind=cast(OutputKind, kind),
            label=label,
            probabilities=probabilities,
            score=score,
            score_sign=int(sign),
            threshold=threshold,
            classes=tuple(classes_value),
        )


@dataclass(frozen=True)
class ModelManifest:
    """What a package holds and how to use it; ``manifest.json``, the signed part of a package."""

    name: str
    version: str
    task: str
    inputs: tuple[InputField, ...]  #: payload fields, in the order the window and features use them
    window: dict[str, object] | None  #: WindowSpec.to_json() plus "resampleMs"; None = one row per message
    feature_names: tuple[str, ...]  #: the model's input columns, in order
    input_name: str  #: the ONNX input tensor's name
    outputs: OutputSpec
    input_example: tuple[tuple[float, ...], ...]
    example_output: dict[str, object]  #: what the input example gives (the smoke test compares within 1e-4)
    files: dict[str, str] = field(default_factory=dict)  #: file name -> SHA-256 hex (write_package fills it)
    runtime: dict[str, str] = field(default_factory=dict)  #: library versions the model was checked with
    created: str = ""  #: ISO 8601 UTC
    key_id: str = ""  #: the signing key's :func:`key_id` (write_package fills it)

    def to_json(self) -> dict[str, object]:
        return {
            "format": PACKAGE_FORMAT,
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "inputs": [{"name": item.name, "path": item.path} for item in self.inputs],
            "window": self.window,
            "featureNames": list(self.feature_names),
            "inputName": self.input_name,
            "outputs": self.outputs.to_json(),
            "inputExample": [list(row) for row in self.input_example],
            "exampleOutput": self.example_output,
            "files": dict(self.files),
            "runtime": dict(self.runtime),
            "created": self.created,
            "keyId": self.key_id,
        }

    @classmethod
    def from_json(cls, data: object) -> ModelManifest:
        """Parse a manifest; :class:`PackageError` names the first field that is wrong."""
        obj = _object(data, "manifest")
        package_format = obj.get("format")
        if package_format != PACKAGE_FORMAT:
            raise _field_error("format", f"must be {PACKAGE_FORMAT!r}, not {package_format!r}")
        name = _text(obj, "name")
        if not _NAME.match(name):
            raise _field_error("name", f"{name!r} must match {_NAME.pattern}")
        version = _text(obj, "version")
        if not _VERSION.match(version):
            raise _field_error("version", f"{version!r} must match {_VERSION.pattern}")
        task = _text(obj, "task")
        if task not in TASKS:
            raise _field_error("task", f"must be one of {', '.join(TASKS)}, not {task!r}")
        inputs = _inputs(obj.get("inputs"))
        window = obj.get("window")
        if window is not None and not isinstance(window, dict):
            raise _field_error("window", "must be an object or null")
        feature_names = _text_list(obj.get("featureNames"), "featureNames")
        if len(set(feature_names)) != len(feature_names):
            raise _field_error("featureNames", "must not repeat a name")
        input_name = _text(obj, "inputName")
        outputs = OutputSpec.from_json(obj.get("outputs"))
        example = _example(obj.get("inputExample"), len(feature_names))
        example_output = obj.get("exampleOutput")
        if not isinstance(example_output, dict):
            raise _field_error("exampleOutput", "must be an object")
        files = _files(obj.get("files"))
        runtime = _string_map(obj.get("runtime", {}), "runtime")
        created = _text(obj, "created")
        try:
            datetime.fromisoformat(created)
        except ValueError:
            raise _field_error("created", f"{created!r} is not an ISO 8601 time") from None
        manifest_key_id = _text(obj, "keyId")
        if not _KEY_ID.match(manifest_key_id):
            raise _field_error("keyId", f"{manifest_key_id!r} must be 16 lowercase hex digits")
        return cls(
            name=name,
            version=version,
            task=task,
            inputs=inputs,
            window=cast(dict[str, object] | None, window),
            feature_names=tuple(feature_names),
            input_name=input_name,
            outputs=outputs,
            input_example=example,
            example_output=cast(dict[str, object], example_output),
            files=files,
            runtime=runtime,
            created=created,
            key_id=manifest_key_id,
        )


# -- keys -----------------------------------------------------------------------------------------------


def public_key_text(key: Ed25519PublicKey) -> str:
    """``ed25519:`` + base64 of the raw 32 key bytes: how keys appear in configuration."""
    return KEY_PREFIX + base64.b64encode(_raw(key)).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """The key :func:`public_key_text` wrote; :class:`PackageError` naming what is wrong."""
    if not isinstance(text, str) or not text.startswith(KEY_PREFIX):
        raise PackageError(f"public key {str(text)[:80]!r}: must start with {KEY_PREFIX!r}")
    try:
        raw = base64.b64decode(text[len(KEY_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise PackageError(f"public key {text[:80]!r}: is not valid base64") from None
    if len(raw) != _PUBLIC_KEY_BYTES:
        raise PackageError(f"public key {text[:80]!r}: must be {_PUBLIC_KEY_BYTES} bytes, not {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The key's fingerprint: the first 16 hex digits of the SHA-256 of its raw bytes."""
    return hashlib.sha256(_raw(key)).hexdigest()[:16]


# -- writing and verifying ------------------------------------------------------------------------------


def manifest_bytes(manifest: ModelManifest) -> bytes:
    """The exact bytes written to ``manifest.json`` (sorted keys, indented, UTF-8)."""
    try:
        text = json.dumps(manifest.to_json(), indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise PackageError(f"{MANIFEST_FILE}: cannot be written as JSON: {error}") from None
    return (text + "\n").encode("utf-8")


def write_package(
    directory: Path,
    *,
    manifest: ModelManifest,
    onnx: bytes,
    private_key: Ed25519PrivateKey,
    extra_files: Mapping[str, bytes] | None = None,
) -> ModelManifest:
    """Write a signed package into ``directory`` (created when missing) and return the manifest as written.

    The manifest's ``files`` and ``key_id`` are filled here from what is written and who signs, whatever the
    given manifest says. ``extra_files`` (name -> bytes) are written and listed next to ``model.onnx``.
    """
    extras = dict(extra_files or {})
    for name in extras:
        if not _FILE_NAME.match(name) or name in (MODEL_FILE, MANIFEST_FILE, SIGNATURE_FILE):
            raise PackageError(f"extra file {name!r}: must be a plain file name other than the package's own")
    contents = {MODEL_FILE: onnx, **extras}
    written = replace(
        manifest,
        files={name: hashlib.sha256(data).hexdigest() for name, data in contents.items()},
        key_id=key_id(private_key.public_key()),
    )
    # Parsing what we are about to sign keeps a bad manifest from ever leaving the cloud.
    body = manifest_bytes(written)
    ModelManifest.from_json(json.loads(body))
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (directory / name).write_bytes(data)
    (directory / MANIFEST_FILE).write_bytes(body)
    signature = base64.b64encode(private_key.sign(body)).decode("ascii")
    (directory / SIGNATURE_FILE).write_text(signature + "\n", encoding="ascii")
    return written


def verify_package(directory: Path, trusted_keys: Sequence[Ed25519PublicKey]) -> ModelManifest:
    """Check a package and return its manifest: the signature, then the manifest, then every file's digest."""
    body = _read(directory / MANIFEST_FILE, limit=_MAX_MANIFEST_BYTES)
    signature = _signature(directory / SIGNATURE_FILE)
    if not trusted_keys:
        raise SignatureError(
            f"{SIGNATURE_FILE}: no trusted keys are configured, so no package can be accepted"
        )
    signer = None
    for key in trusted_keys:
        try:
            key.verify(signature, body)
        except InvalidSignature:
            continue
        signer = key
        break
    if signer is None:
        ids = ", ".join(key_id(key) for key in trusted_keys)
        raise SignatureError(
            f"{SIGNATURE_FILE}: the signature over {MANIFEST_FILE} verifies against none of the trusted keys "
            f"({ids}); the manifest or the signature was changed, or another key signed it"
        )
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise PackageError(f"{MANIFEST_FILE}: is not valid JSON: {error}") from None
    manifest = ModelManifest.from_json(data)
    if manifest.key_id != key_id(signer):
        raise PackageError(
            f"{MANIFEST_FILE}: field 'keyId' is {manifest.key_id!r} but the key that signed it is {key_id(signer)!r}"
        )
    for name, expected in manifest.files.items():
        actual = _digest(directory / name)
        if actual != expected:
            raise PackageError(f"{name}: SHA-256 {actual} does not match the manifest's {expected}")
    return manifest


# -- parsing helpers ------------------------------------------------------------------------------------


def _field_error(field_name: str, problem: str) -> PackageError:
    return PackageError(f"{MANIFEST_FILE}: field {field_name!r} {problem}")


def _path(parent: str | None, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _object(data: object, field_name: str) -> Mapping[str, object]:
    if not isinstance(data, dict):
        raise _field_error(field_name, "must be a JSON object")
    return cast(Mapping[str, object], data)


def _text(obj: Mapping[str, object], name: str, parent: str | None = None) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
        raise _field_error(
            _path(parent, name), f"must be a non-empty string of at most {_MAX_TEXT} characters"
        )
    return value


def _optional_text(obj: Mapping[str, object], name: str, parent: str) -> str | None:
    if obj.get(name) is None:
        return None
    return _text(obj, name, parent)


def _number(value: object, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _field_error(field_name, f"must be a finite number, not {value!r}"[:200])
    return float(value)


def _text_list(value: object, field_name: str) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > _MAX_ITEMS:
        raise _field_error(field_name, f"must be a list of 1 to {_MAX_ITEMS} strings")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item or len(item) > _MAX_TEXT:
            raise _field_error(f"{field_name}[{index}]", "must be a non-empty string")
    return cast(list[str], value)


def _inputs(value: object) -> tuple[InputField, ...]:
    if not isinstance(value, list) or not value or len(value) > _MAX_ITEMS:
        raise _field_error("inputs", f"must be a list of 1 to {_MAX_ITEMS} fields")
    fields = []
    for index, item in enumerate(value):
        where = f"inputs[{index}]"
        obj = _object(item, where)
        fields.append(InputField(name=_text(obj, "name", where), path=_text(obj, "path", where)))
    if len({item.name for item in fields}) != len(fields):
        raise _field_error("inputs", "must not repeat a field name")
    return tuple(fields)


def _example(value: object, width: int) -> tuple[tuple[float, ...], ...]:
    if not isinstance(value, list) or not value or len(value) > _MAX_ITEMS:
        raise _field_error("inputExample", f"must be a list of 1 to {_MAX_ITEMS} rows")
    rows = []
    for index, row in enumerate(value):
        if not isinstance(row, list) or len(row) != width:
            raise _field_error(
                f"inputExample[{index}]", f"must be a list of {width} numbers (one per feature)"
            )
        rows.append(tuple(_number(item, f"inputExample[{index}]") for item in row))
    return tuple(rows)


def _files(value: object) -> dict[str, str]:
    files = _string_map(value, "files")
    if MODEL_FILE not in files:
        raise _field_error("files", f"must list {MODEL_FILE!r}")
    for name, digest in files.items():
        # A listed name is opened next to the manifest: nothing that could leave the package directory.
        if not _FILE_NAME.match(name) or name in (MANIFEST_FILE, SIGNATURE_FILE):
            raise _field_error("files", f"has {name[:80]!r}, which is not a plain file name of the package")
        if not _SHA256.match(digest):
            raise _field_error(f"files.{name}", "must be a SHA-256 as 64 lowercase hex digits")
    return files


def _string_map(value: object, field_name: str) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > _MAX_ITEMS:
        raise _field_error(field_name, "must be an object of strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise _field_error(f"{field_name}.{key}", "must be a string")
    return cast(dict[str, str], dict(value))


# -- file helpers ---------------------------------------------------------------------------------------


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _read(path: Path, *, limit: int) -> bytes:
    try:
        with path.open("rb") as file:
            data = file.read(limit + 1)
    except FileNotFoundError:
        raise PackageError(f"{path.name}: is missing from the package directory {path.parent}") from None
    except OSError as error:
        raise PackageError(f"{path.name}: cannot be read: {error.strerror or error}") from None
    if len(data) > limit:
        raise PackageError(f"{path.name}: is larger than {limit} bytes")
    return data


def _signature(path: Path) -> bytes:
    try:
        text = _read(path, limit=1024).decode("ascii").strip()
        signature = base64.b64decode(text, validate=True)
    except PackageError as error:
        raise SignatureError(str(error)) from None
    except (UnicodeDecodeError, binascii.Error, ValueError):
        raise SignatureError(f"{path.name}: is not a base64 signature") from None
    if len(signature) != _SIGNATURE_BYTES:
        raise SignatureError(
            f"{path.name}: must hold a {_SIGNATURE_BYTES}-byte Ed25519 signature, not {len(signature)}"
        )
    return signature


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        raise PackageError(f"{path.name}: is missing from the package directory {path.parent}") from None
    except OSError as error:
        raise PackageError(f"{path.name}: cannot be read: {error.strerror or error}") from None
    return digest.hexdigest()


__all__ = [
    "KEY_PREFIX",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "OUTPUT_KINDS",
    "PACKAGE_FORMAT",
    "SIGNATURE_FILE",
    "TASKS",
    "InputField",
    "ModelManifest",
    "ModelPackageError",
    "ModelSignatureError",
    "OutputKind",
    "OutputSpec",
    "PackageError",
    "SignatureError",
    "key_id",
    "manifest_bytes",
    "parse_public_key",
    "public_key_text",
    "verify_package",
    "write_package",
]
