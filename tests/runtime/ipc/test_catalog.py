"""The operation catalog matches the operations of the installed awsiotsdk client."""

from __future__ import annotations

import inspect

from awsiot import eventstreamrpc
from awsiot.greengrasscoreipc import model

from edgewise.runtime.ipc.catalog import OPERATIONS, STREAM_EVENT_SHAPES, request_shape, response_shape


def sdk_operations() -> list[type[eventstreamrpc.Operation]]:
    return [
        cls
        for _, cls in inspect.getmembers(model, inspect.isclass)
        if issubclass(cls, eventstreamrpc.ClientOperation) and cls is not eventstreamrpc.ClientOperation
    ]


def test_catalog_holds_exactly_the_sdk_operations() -> None:
    assert {cls._model_name() for cls in sdk_operations()} == OPERATIONS


def test_stream_event_shapes_match_the_sdk() -> None:
    expected = {
        cls._model_name(): cls._response_stream_type()._model_name()
        for cls in sdk_operations()
        if cls._response_stream_type() is not None
    }

    assert dict(STREAM_EVENT_SHAPES) == expected


def test_request_and_response_shapes_are_named_after_the_operation() -> None:
    for cls in sdk_operations():
        assert request_shape(cls._model_name()) == cls._request_type()._model_name()
        assert response_shape(cls._model_name()) == cls._response_type()._model_name()
