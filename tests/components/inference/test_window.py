"""Messages to model input rows: one per message, or resampled sliding windows per source whose features are
exactly what ``window_features`` computes over the bucket means (as the dataset builder does)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edgewise.components.inference.errors import ModelLoadError, PayloadError
from edgewise.components.inference.window import InputLayout, SourceWindows, decode_payload
from edgewise.ml.features import WindowSpec, window_features
from edgewise.protocol.model_package import InputField, ModelManifest, OutputSpec

WINDOW = {"size": 3, "step": 2, "features": ["mean", "max"], "fftBands": 4, "resampleMs": 1000}


def manifest(
    window: dict[str, Any] | None = None, feature_names: tuple[str, ...] = ("temp", "hum")
) -> ModelManifest:
    return ModelManifest(
        name="m",
        version="1",
        task="anomaly",
        inputs=(InputField("temp", "$.sensors.temp"), InputField("hum", "hum")),
        window=window,
        feature_names=feature_names,
        input_name="input",
        outputs=OutputSpec(kind="anomaly", score="score"),
        input_example=((0.0,) * len(feature_names),),
        example_output={},
    )


def windows(
    window: dict[str, Any] | None = None, feature_names: tuple[str, ...] = ("temp", "hum")
) -> SourceWindows:
    return SourceWindows(InputLayout.from_manifest(manifest(window, feature_names)))


def reading(temp: object, hum: object = 50.0) -> dict[str, Any]:
    return {"sensors": {"temp": temp}, "hum": hum}


def test_without_a_window_each_message_is_a_row_in_feature_order() -> None:
    rows = windows(feature_names=("hum", "temp")).add("s/1", reading(21.5, True), 1234)

    assert len(rows) == 1
    assert rows[0].source == "s/1"
    assert rows[0].timestamp_ms == 1234
    assert rows[0].values.tolist() == [1.0, 21.5]  # a boolean counts as 1/0, as in datasets
    assert rows[0].document == reading(21.5, True)


@pytest.mark.parametrize(
    ("document", "malformed", "problem"),
    [
        (reading(None), False, "field 'temp' (path $.sensors.temp) is missing"),
        ({"hum": 3}, False, "field 'temp' (path $.sensors.temp) is missing"),
        (reading("warm"), False, "field 'temp' (path $.sensors.temp) is not a number: \"warm\""),
        (reading(float("nan")), False, "is not a number"),
        ([1, 2], True, "the payload is JSON list, not an object"),
    ],
)
def test_a_message_that_does_not_fit_is_refused_with_why(
    document: object, malformed: bool, problem: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        windows().add("s/1", document, 0)

    assert caught.value.malformed is malformed
    assert problem in str(caught.value)


def test_payload_bytes_are_parsed_and_non_json_is_malformed() -> None:
    assert decode_payload(b'{"a": 1}') == {"a": 1}
    assert decode_payload({"a": 1}) == {"a": 1}
    with pytest.raises(PayloadError, match="not JSON") as caught:
        decode_payload(b"\xff\x00 not json")
    assert caught.value.malformed


def test_windows_of_bucket_means_give_the_features_the_dataset_builder_computes() -> None:
    source = windows(WINDOW, feature_names=("temp__max", "hum__mean", "temp__mean"))
    spec = WindowSpec.from_json(WINDOW)
    emitted = []
    # Two messages per 1-second bucket, buckets 0..5; bucket 3 is empty (a missing sample).
    samples = {0: (1, 3), 1: (2, 6), 2: (5, 5), 4: (8, 0), 5: (1, 1)}
    for bucket, (first, second) in samples.items():
        for offset, temp in ((100, first), (700, second)):
            emitted += source.add("s/1", reading(temp, hum=temp * 10), bucket * 1000 + offset)
    emitted += source.add("s/1", reading(0), 6000)  # closes bucket 5

    means = np.array([[2.0, 20.0], [4.0, 40.0], [5.0, 50.0], [np.nan, np.nan], [4.0, 40.0], [1.0, 10.0]])
    # size 3, step 2: windows end at buckets 2 and 4 (and would at 6, still open).
    assert [row.timestamp_ms for row in emitted] == [2000, 4000]
    for row, end in zip(emitted, (2, 4), strict=True):
        full = window_features(means[end - 2 : end + 1], spec, 1.0)
        names = spec.feature_names(["temp", "hum"])
        expected = [full[names.index(name)] for name in ("temp__max", "hum__mean", "temp__mean")]
        np.testing.assert_allclose(row.values, expected)
    assert emitted[0].document == reading(5, hum=50)


def test_each_source_has_its_own_series_and_a_window_with_a_field_all_missing_is_left_out() -> None:
    source = windows({**WINDOW, "step": 1}, feature_names=("temp__mean",))
    rows = []
    for second in range(4):
        rows += source.add("a", reading(1.0 + second), second * 1000)
    # Source "b" has values in buckets 0 and 3 only; the message at 20 s closes bucket 3 and fills the gap with
    # missing samples (a window's worth at most). Windows with one value are kept, the all-missing one is not.
    for millis in (0, 3000, 20_000):
        rows += source.add("b", reading(9.0), millis)

    assert [(row.source, row.timestamp_ms) for row in rows] == [
        ("a", 2000),
        ("b", 2000),
        ("b", 3000),
        ("b", 4000),
        ("b", 5000),
    ]
    assert rows[0].values.tolist() == [2.0]  # the mean of buckets 0..2 of "a"
    assert {row.values[0] for row in rows[1:]} == {9.0}


@pytest.mark.parametrize(
    ("window", "feature_names", "problem"),
    [
        (WINDOW, ("temp__std",), "field 'featureNames' names 'temp__std'"),
        ({**WINDOW, "resampleMs": 0}, ("temp__max",), "'window.resampleMs' must be a positive"),
        ({k: v for k, v in WINDOW.items() if k != "resampleMs"}, ("temp__max",), "'window.resampleMs'"),
        ({**WINDOW, "features": ["median"]}, ("temp__max",), "window.features: 'median'"),
        (None, ("pressure",), "names 'pressure'"),
    ],
)
def test_a_manifest_whose_inputs_do_not_give_its_features_is_refused(
    window: dict[str, Any] | None, feature_names: tuple[str, ...], problem: str
) -> None:
    with pytest.raises(ModelLoadError, match=problem.replace("[", r"\[")):
        InputLayout.from_manifest(manifest(window, feature_names))
