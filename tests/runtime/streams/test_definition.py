"""Stream definitions follow the SDK: defaults, wire integers, and every rule with an error naming its field."""

from __future__ import annotations
import __future__

import types
from typing import Any

import pytest
from stream_manager import data as sdk

import edgewise.runtime.streams as package
from edgewise.runtime.streams import (
    InvalidStreamRequestError,
    Persistence,
    StrategyOnFull,
    StreamDefinition,
    StreamError,
)
from edgewise.runtime.streams import errors as stream_errors


def test_defaults_are_the_sdks() -> None:
    sdk_definition = sdk.MessageStreamDefinition(name="s")
    definition = StreamDefinition("s")

    assert definition.max_size == sdk_definition.max_size == 256 * 1024 * 1024
    assert definition.stream_segment_size == sdk_definition.stream_segment_size == 16 * 1024 * 1024
    assert definition.time_to_live_millis is sdk_definition.time_to_live_millis is None
    assert definition.persistence is Persistence.File
    assert definition.flush_on_write is False


@pytest.mark.parametrize("strategy", list(StrategyOnFull))
def test_strategy_wire_integers_are_the_sdks(strategy: StrategyOnFull) -> None:
    assert strategy.wire == sdk.StrategyOnFull[strategy.value].value
    assert StrategyOnFull.from_wire(sdk.StrategyOnFull[strategy.value].value) is strategy


@pytest.mark.parametrize("persistence", list(Persistence))
def test_persistence_wire_integers_are_the_sdks(persistence: Persistence) -> None:
    assert persistence.wire == sdk.Persistence[persistence.value].value
    assert Persistence.from_wire(sdk.Persistence[persistence.value].value) is persistence


@pytest.mark.parametrize("value", [2, -1, True, "0", None])
def test_unknown_wire_values_are_refused_naming_the_field(value: object) -> None:
    with pytest.raises(InvalidStreamRequestError, match="strategy_on_full") as strategy_error:
        StrategyOnFull.from_wire(value)
    with pytest.raises(InvalidStreamRequestError, match="persistence") as persistence_error:
        Persistence.from_wire(value)

    assert strategy_error.value.field == "strategy_on_full"
    assert persistence_error.value.field == "persistence"


@pytest.mark.parametrize("name", ["a", ".", "..", "Stream name, v1.0 - raw_data", "x" * 255])
def test_valid_names(name: str) -> None:
    assert StreamDefinition(name).name == name


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": "caf\u00e9"}, "name"),
        ({"name": 7}, "name"),
        ({"max_size": 1023}, "max_size"),
        ({"max_size": 2**63}, "max_size"),
        ({"max_size": True}, "max_size"),
        ({"stream_segment_size": 1023}, "stream_segment_size"),
        ({"stream_segment_size": 2**31}, "stream_segment_size"),
        ({"time_to_live_millis": 59_999}, "time_to_live_millis"),
        ({"time_to_live_millis": 9_223_372_036_855}, "time_to_live_millis"),
        ({"time_to_live_millis": 60_000.0}, "time_to_live_millis"),
        ({"strategy_on_full": 1}, "strategy_on_full"),
        ({"persistence": "File"}, "persistence"),
        ({"flush_on_write": 1}, "flush_on_write"),
        ({"export_definition": ["kinesis"]}, "export_definition"),
    ],
)
def test_every_rule_names_its_field(changes: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"name": "s", **changes}

    with pytest.raises(InvalidStreamRequestError) as caught:
        StreamDefinition(**arguments)

    assert caught.value.field == field
    assert field in str(caught.value)


def test_limits_at_the_sdks_bounds_are_accepted() -> None:
    definition = StreamDefinition(
        "s", max_size=1024, stream_segment_size=1024, time_to_live_millis=60_000, export_definition={}
    )

    assert (definition.max_size, definition.stream_segment_size, definition.time_to_live_millis) == (
        1024,
        1024,
        60_000,
    )


def test_every_error_status_is_an_sdk_response_status() -> None:
    classes = [
        value
        for value in vars(stream_errors).values()
        if isinstance(value, type) and issubclass(value, StreamError)
    ]

    assert len(classes) > 5
    for error_class in classes:
        assert sdk.ResponseStatusCode[error_class.status], error_class


def test_all_lists_exactly_the_public_names() -> None:
    exported = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType | __future__._Feature)
    }

    assert set(package.__all__) == exported
    assert sorted(package.__all__) == package.__all__
