"""Typed, validated access to the CBOR map of a request payload; every error names the field by its wire path."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import cbor2

from edgewise.runtime.streams.definition import STREAM_NAME_MAX_LENGTH, STREAM_NAME_PATTERN
from edgewise.runtime.streams.wire.frames import MAX_REQUEST_ID_LENGTH, WireFormatError

_MAX_TEXT_LENGTH: Final = 255
_INT64_MAX: Final = 2**63 - 1


def _load_map(payload: bytes) -> Mapping[Any, Any]:
    try:
        document = cbor2.loads(payload)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError, LookupError) as exc:
        # cbor2 signals bad input through several built-in exception types besides its own.
        raise WireFormatError(f"Payload is not valid CBOR: {exc}") from exc
    if not isinstance(document, Mapping):
        raise WireFormatError(f"Payload must be a CBOR map, got {_kind(document)}")
    return document


def _kind(value: object) -> str:
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        (str, "a text string"),
        ((bytes, bytearray), "a byte string"),
        (Mapping, "a map"),
        ((list, tuple), "an array"),
    ]
    if value is None:
        return "null"
    for types, name in kinds:
        if isinstance(value, types):
            return name
    return f"a CBOR value decoded as {type(value).__name__}"


class RequestFields:
    """Typed, validated access to one CBOR map; errors name the field by its wire path."""

    def __init__(self, document: Mapping[Any, Any], *, path: str = "", request_id: str | None = None) -> None:
        self._document = document
        self._path = path
        self.request_id = request_id

    def error(self, key: str, problem: str) -> WireFormatError:
        """The error for field ``key`` of this map, carrying the request id so the request can be answered."""
        name = f"{self._path}{key}"
        return WireFormatError(f"Field {name!r} {problem}", field=name, request_id=self.request_id)

    def _get(self, key: str, *, required: bool) -> object:
        value = self._document.get(key)
        if value is None and required:
            raise self.error(key, "is required")
        return value

    def text(
        self,
        key: str,
        *,
        required: bool = False,
        max_length: int = _MAX_TEXT_LENGTH,
        min_length: int = 0,
        pattern: re.Pattern[str] | None = None,
    ) -> str | None:
        value = self._get(key, required=required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(key, f"must be a text string, got {_kind(value)}")
        if not min_length <= len(value) <= max_length:
            raise self.error(key, f"must be {min_length} to {max_length} characters long, got {len(value)}")
        if pattern is not None and pattern.fullmatch(value) is None:
            raise self.error(key, f"must match {pattern.pattern!r}, got {value!r}")
        return value

    def name(self, key: str) -> str:
        value = self.text(
            key, required=True, min_length=1, max_length=STREAM_NAME_MAX_LENGTH, pattern=STREAM_NAME_PATTERN
        )
        assert value is not None  # required
        return value

    def integer(self, key: str, *, minimum: int, maximum: int = _INT64_MAX) -> int | None:
        value = self._get(key, required=False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, got {_kind(value)}")
        if not minimum <= value <= maximum:
            raise self.error(key, f"must be between {minimum} and {maximum}, got {value}")
        return value

    def boolean(self, key: str) -> bool | None:
        value = self._get(key, required=False)
        if value is not None and not isinstance(value, bool):
            raise self.error(key, f"must be a boolean, got {_kind(value)}")
        return value

    def binary(self, key: str) -> bytes:
        value = self._get(key, required=True)
        if not isinstance(value, bytes | bytearray):
            raise self.error(key, f"must be a byte string, got {_kind(value)}")
        return bytes(value)

    def texts(self, key: str, *, max_items: int, max_length: int) -> tuple[str, ...]:
        value = self._get(key, required=False)
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            raise self.error(key, f"must be an array, got {_kind(value)}")
        if len(value) > max_items:
            raise self.error(key, f"must have at most {max_items} items, got {len(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str) or len(item) > max_length:
                raise self.error(
                    f"{key}[{index}]", f"must be a text string of at most {max_length} characters"
                )
        return tuple(value)

    def nested(self, key: str, *, required: bool) -> RequestFields | None:
        value = self._get(key, required=required)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.error(key, f"must be a map, got {_kind(value)}")
        return RequestFields(value, path=f"{self._path}{key}.", request_id=self.request_id)

    def mapping(self, key: str) -> Mapping[Any, Any] | None:
        value = self._get(key, required=False)
        if value is not None and not isinstance(value, Mapping):
            raise self.error(key, f"must be a map, got {_kind(value)}")
        return value

    def enum_value(self, key: str, choices: Mapping[int, Any], *, required: bool) -> Any:
        value = self._get(key, required=required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value not in choices:
            raise self.error(key, f"must be one of {sorted(choices)}, got {_kind(value)} {value!r:.40}")
        return choices[value]


def request_fields(payload: bytes) -> RequestFields:
    """The fields of a request payload, whose ``requestId`` is checked (and kept, when usable, for errors)."""
    document = _load_map(payload)
    raw_id = document.get("requestId")
    request_id = raw_id if isinstance(raw_id, str) and len(raw_id) <= MAX_REQUEST_ID_LENGTH else None
    fields = RequestFields(document, request_id=request_id)
    fields.text("requestId", required=True, min_length=1, max_length=MAX_REQUEST_ID_LENGTH)
    return fields
