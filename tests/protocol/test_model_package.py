"""Model packages: a written package verifies to its manifest; a changed byte, a missing file, another key, a
malformed signature or a bad manifest field is refused with an error naming the file or the field."""

from __future__ import annotations

import base64
import contextlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.errors import EdgewiseError
from edgewise.protocol.model_package import (
    MANIFEST_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    InputField,
    ModelManifest,
    OutputSpec,
    PackageError,
    SignatureError,
    key_id,
    manifest_bytes,
    parse_public_key,
    public_key_text,
    verify_package,
    write_package,
)

ONNX = b"\x08\x07not really onnx, the package does not look inside" * 10
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def manifest() -> ModelManifest:
    return ModelManifest(
        name="anomaly",
        version="3",
        task="anomaly",
        inputs=(InputField("temp", "$.sensors.temp"), InputField("hum", "hum")),
        window={"size": 4, "step": 1, "features": ["mean"], "fftBands": 4, "resampleMs": 1000},
        feature_names=("temp__mean", "hum__mean"),
        input_name="input",
        outputs=OutputSpec(kind="anomaly", score="scores", score_sign=-1, threshold=0.5),
        input_example=((1.0, 2.0), (3.5, -4.0)),
        example_output={"score": [0.1, 0.9], "anomaly": [False, True]},
        runtime={"onnxruntime": "1.32.0"},
        created="2026-12-07T09:00:00+00:00",
    )


@pytest.fixture
def package(tmp_path: Path) -> Path:
    directory = tmp_path / "package"
    write_package(directory, manifest=manifest(), onnx=ONNX, private_key=KEY, extra_files={"ref.json": b"{}"})
    return directory


def test_a_written_package_verifies_to_the_manifest_with_files_and_key_filled(package: Path) -> None:
    verified = verify_package(package, [Ed25519PrivateKey.generate().public_key(), KEY.public_key()])

    assert verified.key_id == key_id(KEY.public_key())
    assert set(verified.files) == {MODEL_FILE, "ref.json"}
    expected = manifest()
    assert verified == ModelManifest(
        **{**expected.__dict__, "files": verified.files, "key_id": verified.key_id}
    )
    assert ModelManifest.from_json(verified.to_json()) == verified
    assert (package / MANIFEST_FILE).read_bytes() == manifest_bytes(verified)


def test_public_key_text_round_trips_and_bad_texts_name_the_problem() -> None:
    text = public_key_text(KEY.public_key())
    assert text.startswith("ed25519:")
    assert key_id(parse_public_key(text)) == key_id(KEY.public_key())
    for bad, problem in [
        ("rsa:AAAA", "must start with"),
        ("ed25519:***", "not valid base64"),
        ("ed25519:" + base64.b64encode(b"short").decode(), "must be 32 bytes"),
    ]:
        with pytest.raises(PackageError, match=problem):
            parse_public_key(bad)


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_the_manifest_breaks_the_signature(package: Path) -> None:
    flip(package / MANIFEST_FILE, 40)

    with pytest.raises(SignatureError, match=rf"{SIGNATURE_FILE}: the signature over {MANIFEST_FILE}"):
        verify_package(package, [KEY.public_key()])


def test_a_flipped_byte_in_the_model_is_a_digest_mismatch_naming_it(package: Path) -> None:
    flip(package / MODEL_FILE, 7)

    with pytest.raises(PackageError, match=rf"^{MODEL_FILE}: SHA-256 .* does not match") as caught:
        verify_package(package, [KEY.public_key()])
    assert not isinstance(caught.value, SignatureError)


@pytest.mark.parametrize("name", [MODEL_FILE, "ref.json", MANIFEST_FILE, SIGNATURE_FILE])
def test_a_missing_file_is_named(package: Path, name: str) -> None:
    (package / name).unlink()

    with pytest.raises(PackageError, match=rf"^{name}: is missing"):
        verify_package(package, [KEY.public_key()])


def test_a_package_signed_by_another_key_is_refused_and_the_trusted_ids_named(package: Path) -> None:
    other = Ed25519PrivateKey.generate().public_key()

    with pytest.raises(SignatureError, match=key_id(other)):
        verify_package(package, [other])
    with pytest.raises(SignatureError, match="no trusted keys"):
        verify_package(package, [])


@pytest.mark.parametrize(
    ("text", "problem"),
    [("not base64!!", "not a base64 signature"), (base64.b64encode(b"x" * 10).decode(), "64-byte")],
)
def test_a_malformed_signature_file_is_named(package: Path, text: str, problem: str) -> None:
    (package / SIGNATURE_FILE).write_text(text)

    with pytest.raises(SignatureError, match=rf"^{SIGNATURE_FILE}: .*{problem}"):
        verify_package(package, [KEY.public_key()])


def resign(package: Path, data: dict[str, Any]) -> None:
    body = json.dumps(data).encode()
    (package / MANIFEST_FILE).write_bytes(body)
    (package / SIGNATURE_FILE).write_text(base64.b64encode(KEY.sign(body)).decode())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"format": "edgewise.model/9"}, "format"),
        ({"name": "no spaces"}, "name"),
        ({"task": "clustering"}, "task"),
        ({"inputs": []}, "inputs"),
        ({"inputs": [{"name": "temp"}]}, "inputs[0].path"),
        ({"featureNames": ["a", "a"]}, "featureNames"),
        ({"inputExample": [[1.0]]}, "inputExample[0]"),
        ({"inputExample": [[1.0, "x"]]}, "inputExample[0]"),
        ({"outputs": {"kind": "anomaly"}}, "outputs.score"),
        ({"outputs": {"kind": "ranker"}}, "outputs.kind"),
        ({"outputs": {"kind": "anomaly", "score": "s", "scoreSign": 2}}, "outputs.scoreSign"),
        ({"files": {"../model.onnx": "0" * 64}}, "files"),
        ({"files": {"model.onnx": "xyz"}}, "files.model.onnx"),
        ({"created": "yesterday"}, "created"),
        ({"keyId": "nothex"}, "keyId"),
    ],
)
def test_a_signed_manifest_with_a_bad_field_names_the_field(
    package: Path, change: dict[str, Any], field: str
) -> None:
    data = json.loads((package / MANIFEST_FILE).read_bytes())
    resign(package, {**data, **change})

    with pytest.raises(PackageError, match="^" + re.escape(f"{MANIFEST_FILE}: field '{field}'")):
        verify_package(package, [KEY.public_key()])


def test_a_signed_manifest_that_is_not_json_is_named(package: Path) -> None:
    body = b"{not json"
    (package / MANIFEST_FILE).write_bytes(body)
    (package / SIGNATURE_FILE).write_text(base64.b64encode(KEY.sign(body)).decode())

    with pytest.raises(PackageError, match=rf"^{MANIFEST_FILE}: is not valid JSON"):
        verify_package(package, [KEY.public_key()])


def test_package_errors_are_edgewise_errors() -> None:
    assert issubclass(SignatureError, PackageError)
    assert issubclass(PackageError, EdgewiseError)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_from_json_of_arbitrary_json_is_refused_with_a_package_error(data: object) -> None:
    with contextlib.suppress(PackageError):
        ModelManifest.from_json(data)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(manifest().to_json())), json_values)
def test_from_json_of_a_manifest_with_one_field_replaced_parses_or_names_a_package_error(
    key: str, value: object
) -> None:
    data = {**manifest().to_json(), "files": {MODEL_FILE: "0" * 64}, "keyId": "0" * 16, key: value}
    message = ""
    try:
        parsed = ModelManifest.from_json(data)
    except PackageError as error:
        message = str(error)
    else:
        assert ModelManifest.from_json(parsed.to_json()) == parsed
    assert message == "" or message.startswith(f"{MANIFEST_FILE}: field ")
