"""Dataset specs: field texts, the checks on each part, and the camelCase JSON round trip."""

from __future__ import annotations

import pytest

from edgewise.ml.datasets import DatasetSpec, FieldSpec, LabelSpec, WindowSpec, parse_field
from edgewise.ml.errors import DatasetError
from edgewise.ml.jsonpath import parse_path


def test_parse_field_takes_a_name_or_the_last_key() -> None:
    assert parse_field("t=$.sensors.temp") == FieldSpec("t", parse_path("$.sensors.temp"))
    assert parse_field("readings[0].value").name == "value"
    # An "=" inside a quoted key is part of the path.
    assert parse_field("$['a=b']").name == "a=b"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("$[0]", "has no key to name the column; write 'name=$[0]'"),
        ("thing", "field name 'thing' is reserved"),
        ("label=x", "field name 'label' is reserved"),
        ("a__b", "holds '__'"),
        ("t=a..b", "has an empty key"),
    ],
)
def test_bad_fields_say_why(text: str, problem: str) -> None:
    with pytest.raises(DatasetError) as caught:
        parse_field(text)

    assert problem in str(caught.value)


def test_spec_checks() -> None:
    temp = parse_field("temp")
    with pytest.raises(DatasetError, match="fields: at least one field"):
        DatasetSpec(fields=())
    with pytest.raises(DatasetError, match="fields: two fields are named 'temp'"):
        DatasetSpec(fields=(temp, parse_field("temp=$.other")))
    with pytest.raises(DatasetError, match="window: needs resampleMs"):
        DatasetSpec(fields=(temp,), window=WindowSpec(size=4, step=1))
    with pytest.raises(DatasetError, match="resampleMs: 0 is not an integer"):
        DatasetSpec(fields=(temp,), resample_ms=0)
    with pytest.raises(DatasetError, match="label: give either a field or anomalousRanges"):
        LabelSpec()
    with pytest.raises(DatasetError, match=r"label.anomalousRanges\[0\]: start 5 is not before end 5"):
        LabelSpec(anomalous_ranges=((5, 5),))


def test_json_round_trip() -> None:
    spec = DatasetSpec(
        fields=(parse_field("temp=$.sensors.temp"), parse_field("readings[0].value")),
        resample_ms=1000,
        window=WindowSpec(size=8, step=2, features=("mean", "fft"), fft_bands=2),
        label=LabelSpec(anomalous_ranges=((0, 10), (20, 30))),
    )

    data = spec.to_json()

    assert data == {
        "fields": [
            {"name": "temp", "path": "$.sensors.temp"},
            {"name": "value", "path": "readings[0].value"},
        ],
        "resampleMs": 1000,
        "window": {"size": 8, "step": 2, "features": ["mean", "fft"], "fftBands": 2},
        "label": {"field": None, "anomalousRanges": [[0, 10], [20, 30]]},
    }
    assert DatasetSpec.from_json(data) == spec


def test_from_json_accepts_field_texts_and_names_bad_parts() -> None:
    spec = DatasetSpec.from_json({"fields": ["t=temp"], "label": {"field": "state"}})

    assert spec.fields == (parse_field("t=temp"),)
    assert spec.label == LabelSpec(field=parse_field("state"))
    with pytest.raises(DatasetError, match=r"fields\[0\].path: is required"):
        DatasetSpec.from_json({"fields": [{"name": "x"}]})
    with pytest.raises(DatasetError, match="fields: must be a list"):
        DatasetSpec.from_json({"fields": "temp"})
    with pytest.raises(DatasetError, match="resampleMs: 'fast'"):
        DatasetSpec.from_json({"fields": ["temp"], "resampleMs": "fast"})
    with pytest.raises(DatasetError, match=r"label.anomalousRanges\[0\]: must be \[startMs, endMs\]"):
        DatasetSpec.from_json({"fields": ["temp"], "label": {"anomalousRanges": [[1, "2"]]}})
