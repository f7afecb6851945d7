"""Dataset and model names, and the ML error classes others catch."""

from __future__ import annotations

import pytest

from edgewise.errors import EdgewiseError
from edgewise.ml.errors import (
    DatasetError,
    ExportError,
    FidelityError,
    MlError,
    MlNameError,
    RegistryError,
    TrainingError,
)
from edgewise.ml.names import ML_NAME, ML_NAME_PATTERN, check_ml_name


@pytest.mark.parametrize("name", ["a", "Z9", "pump-anomaly_2", "0" + "x" * 63])
def test_valid_names_are_returned(name: str) -> None:
    assert check_ml_name("name", name) == name
    assert ML_NAME.fullmatch(name)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "must not be empty"),
        ("x" * 65, "longer than 64 characters"),
        ("-lead", "must start with a letter or digit"),
        ("has.dot", "must start with a letter or digit and hold only"),
        ("sp ace", "must start with a letter or digit and hold only"),
    ],
)
def test_invalid_names_raise_naming_the_field(name: str, problem: str) -> None:
    with pytest.raises(MlNameError, match=problem) as caught:
        check_ml_name("model", name)

    assert str(caught.value).startswith("model: ")
    assert caught.value.field == "model"


def test_pattern_and_compiled_expression_agree() -> None:
    import re

    for name in ["ok", "-no", "a" * 64, "a" * 65, "ü"]:
        assert bool(re.match(ML_NAME_PATTERN, name)) == bool(ML_NAME.fullmatch(name))


def test_error_classes_form_the_documented_tree() -> None:
    for cls in (MlNameError, DatasetError, TrainingError, ExportError, RegistryError):
        assert issubclass(cls, MlError)
    assert issubclass(FidelityError, ExportError)
    assert issubclass(MlError, EdgewiseError)
    assert RegistryError("model 'x' not found", not_found=True).not_found
    assert not RegistryError("store down").not_found
