"""Shadow document semantics, as AWS IoT's Device Shadow service defines them. Pure functions, no I/O.

A stored shadow is a ``state`` (``desired`` and/or ``reported`` objects), a ``metadata`` tree of the same
shape whose leaves are ``{"timestamp": t}``, and a ``version``. An update merges key by key: objects merge
recursively, ``null`` deletes a key (or a whole section), anything else (arrays included) replaces the value.
Objects left empty disappear. The delta is what ``desired`` holds that ``reported`` does not, computed from
the stored document after each change. AWS IoT's definition:
https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-document.html.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgewise.protocol.shadow.errors import (
    InvalidShadowRequestError,
    PayloadTooLargeError,
    ShadowVersionConflictError,
)

SECTIONS = ("desired", "reported")
#: Levels of objects and arrays a request may nest, counting ``state`` as level 1 (AWS says 6).
MAX_DEPTH = 6
MAX_CLIENT_TOKEN_BYTES = 64
MAX_THING_NAME = 128
MAX_SHADOW_NAME = 64
_NAME = re.compile(r"[a-zA-Z0-9:_-]+")
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

Json = Any
JsonObject = dict[str, Any]


def validate_thing_name(name: object) -> str:
    """The thing name, checked against the AWS IoT naming rules.

    Raises:
        InvalidShadowRequestError: naming the problem.
    """
    if not isinstance(name, str) or not name:
        raise InvalidShadowRequestError(f"thingName: expected a non-empty string, got {name!r}")
    if len(name) > MAX_THING_NAME or not _NAME.fullmatch(name):
        raise InvalidShadowRequestError(
            f"thingName: {name[:200]!r} must be 1 to {MAX_THING_NAME} characters of a-z, A-Z, 0-9, ':', '_', '-'"
        )
    return name


def validate_shadow_name(name: object) -> str:
    """The shadow name, ``""`` for the classic shadow (``None`` too).

    Raises:
        InvalidShadowRequestError: naming the problem.
    """
    if name is None or name == "":
        return ""
    if not isinstance(name, str):
        raise InvalidShadowRequestError(f"shadowName: expected a string, got {name!r}")
    if len(name) > MAX_SHADOW_NAME or not _NAME.fullmatch(name):
        raise InvalidShadowRequestError(
            f"shadowName: {name[:200]!r} must be 1 to {MAX_SHADOW_NAME} characters of a-z, A-Z, 0-9, ':', '_', '-'"
        )
    return name


def topic_prefix(thing_name: str, shadow_name: str) -> str:
    """``$aws/things/<thing>/shadow`` or ``$aws/things/<thing>/shadow/name/<shadow>``."""
    prefix = f"$aws/things/{thing_name}/shadow"
    return f"{prefix}/name/{shadow_name}" if shadow_name else prefix


OPERATIONS = ("get", "update", "delete")
#: The request topics a shadow service answers, classic and named.
REQUEST_FILTERS = tuple(f"$aws/things/+/shadow/{op}" for op in OPERATIONS) + tuple(
    f"$aws/things/+/shadow/name/+/{op}" for op in OPERATIONS
)


def shadow_filter(thing_name: str) -> str:
    """Every topic of a thing's shadows, classic and named: ``$aws/things/<thing>/shadow/#``."""
    return f"{topic_prefix(thing_name, '')}/#"


def parse_request_topic(topic: str) -> tuple[str, str, str] | None:
    """``(thing, shadow name or "", operation)`` of a shadow request topic; None for any other topic."""
    levels = topic.split("/")
    if len(levels) == 5 and levels[:2] == ["$aws", "things"] and levels[3] == "shadow":
        thing, name, operation = levels[2], "", levels[4]
    elif len(levels) == 7 and levels[:2] == ["$aws", "things"] and levels[3:5] == ["shadow", "name"]:
        thing, name, operation = levels[2], levels[5], levels[6]
    else:
        return None
    return (thing, name, operation) if operation in OPERATIONS else None


@dataclass(frozen=True)
class UpdateRequest:
    """A validated update request: ``state`` is None when the request sent ``"state": null``."""

    state: JsonObject | None
    version: int | None = None
    client_token: str | None = None


@dataclass(frozen=True)
class Shadow:
    """A shadow's stored content."""

    state: JsonObject
    metadata: JsonObject
    version: int


@dataclass(frozen=True)
class UpdateOutcome:
    """What an accepted update produced: the new shadow and the documents published about it."""

    shadow: Shadow
    accepted: JsonObject  #: ``/update/accepted``, also the IPC response
    documents: JsonObject  #: ``/update/documents``
    delta: JsonObject | None  #: ``/update/delta``, when desired and reported differ


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_json(payload: bytes) -> Json:
    """Parse a UTF-8 JSON payload, refusing NaN and Infinity.

    Raises:
        InvalidShadowRequestError: not UTF-8, or not JSON.
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidShadowRequestError(
            "Unsupported documented encoding; supported encoding is UTF-8"
        ) from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise InvalidShadowRequestError("Invalid JSON") from None


def client_token_of(payload: bytes) -> str | None:
    """The request's ``clientToken`` when the payload is a JSON object carrying a valid one."""
    try:
        document = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    token = document.get("clientToken") if isinstance(document, dict) else None
    if isinstance(token, str) and len(token.encode()) <= MAX_CLIENT_TOKEN_BYTES:
        return token
    return None


def _depth(value: Json) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    return 0


def _check_arrays(value: Json) -> None:
    """Arrays are atomic values; AWS rejects ``null`` inside them."""
    if isinstance(value, dict):
        for item in value.values():
            _check_arrays(item)
    elif isinstance(value, list):
        for item in value:
            if item is None:
                raise InvalidShadowRequestError("State contains an invalid node: null inside an array")
            _check_arrays(item)


def parse_update(payload: bytes, *, max_bytes: int) -> UpdateRequest:
    """Validate an update request document (the payload of a ``<shadow topic>/update`` publish).

    Raises:
        PayloadTooLargeError: the payload is larger than ``max_bytes``.
        InvalidShadowRequestError: with the AWS error text for the first problem found.
    """
    if len(payload) > max_bytes:
        raise PayloadTooLargeError("the request", len(payload), max_bytes)
    document = decode_json(payload)
    if not isinstance(document, dict):
        raise InvalidShadowRequestError("Invalid JSON: the request must be a JSON object")
    token = document.get("clientToken")
    if token is not None and (not isinstance(token, str) or len(token.encode()) > MAX_CLIENT_TOKEN_BYTES):
        raise InvalidShadowRequestError(
            f"Invalid clientToken: expected a string of at most {MAX_CLIENT_TOKEN_BYTES} bytes"
        )
    version = document.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
        raise InvalidShadowRequestError(f"Invalid version: expected an integer >= 0, got {version!r}")
    if "state" not in document:
        raise InvalidShadowRequestError("Missing required node: state")
    state = document["state"]
    if state is None:
        return UpdateRequest(None, version, token)
    if not isinstance(state, dict):
        raise InvalidShadowRequestError("State node must be an object")
    sections: JsonObject = {}
    for section in SECTIONS:
        if section in state:
            value = state[section]
            if value is not None and not isinstance(value, dict):
                raise InvalidShadowRequestError(f"{section.capitalize()} node must be an object")
            sections[section] = value
    if 1 + max((_depth(value) for value in sections.values()), default=0) > MAX_DEPTH:
        raise InvalidShadowRequestError(f"JSON contains too many levels of nesting; maximum is {MAX_DEPTH}")
    _check_arrays(sections)
    return UpdateRequest(sections, version, token)


def _leaf_metadata(value: Json, now: int) -> Json:
    if isinstance(value, dict):
        return {key: _leaf_metadata(item, now) for key, item in value.items()}
    if isinstance(value, list):
        return [_leaf_metadata(item, now) for item in value]
    return {"timestamp": now}


def _patch_metadata(patch: Json, now: int) -> Json:
    """Metadata for the leaves a request touched; a deleted (null) leaf gets a timestamp too."""
    if isinstance(patch, dict):
        return {key: _patch_metadata(item, now) for key, item in patch.items()}
    return _leaf_metadata(patch, now)


def _merge(state: JsonObject, metadata: JsonObject, patch: Mapping[str, Json], now: int) -> None:
    for key, value in patch.items():
        if value is None:
            state.pop(key, None)
            metadata.pop(key, None)
        elif isinstance(value, dict):
            if not isinstance(state.get(key), dict):
                # A leaf (or nothing) becomes an object: its old leaf metadata goes with it.
                state[key] = {}
                metadata[key] = {}
            elif not isinstance(metadata.get(key), dict):
                metadata[key] = {}
            _merge(state[key], metadata[key], value, now)
            if not state[key]:
                del state[key]
                metadata.pop(key, None)
        else:
            state[key] = copy.deepcopy(value)
            metadata[key] = _leaf_metadata(value, now)


def _same(left: Json, right: Json) -> bool:
    """JSON equality: numbers by value (1 == 1.0), but a boolean is never a number."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_same(left[key], right[key]) for key in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right, strict=True))
    return type(left) is type(right) and left == right


def compute_delta(desired: Mapping[str, Json], reported: Mapping[str, Json]) -> JsonObject:
    """What ``desired`` holds that ``reported`` does not, with the full path to each differing leaf."""
    delta: JsonObject = {}
    for key, wanted in desired.items():
        actual = reported.get(key)
        if isinstance(wanted, dict) and isinstance(actual, dict):
            inner = compute_delta(wanted, actual)
            if inner:
                delta[key] = inner
        elif not _same(wanted, actual):
            delta[key] = copy.deepcopy(wanted)
    return delta


def _delta_metadata(delta: Mapping[str, Json], desired_metadata: Mapping[str, Json]) -> JsonObject:
    metadata: JsonObject = {}
    for key, value in delta.items():
        meta = desired_metadata.get(key)
        if isinstance(value, dict) and isinstance(meta, dict):
            metadata[key] = _delta_metadata(value, meta)
        elif meta is not None:
            metadata[key] = copy.deepcopy(meta)
    return metadata


def shadow_delta(shadow: Shadow) -> JsonObject:
    """The shadow's current delta (empty when nothing is desired or everything is reported)."""
    desired = shadow.state.get("desired")
    if not isinstance(desired, dict):
        return {}
    reported = shadow.state.get("reported")
    return compute_delta(desired, reported if isinstance(reported, dict) else {})


def state_size(state: Mapping[str, Json]) -> int:
    """Bytes of the stored state (desired and reported, without metadata) as compact UTF-8 JSON."""
    return len(_encode(state).encode())


def _with_token(document: JsonObject, token: str | None) -> JsonObject:
    if token is not None:
        document["clientToken"] = token
    return document


def _snapshot(shadow: Shadow) -> JsonObject:
    return {
        "state": copy.deepcopy(shadow.state),
        "metadata": copy.deepcopy(shadow.metadata),
        "version": shadow.version,
    }


def apply_update(
    previous: Shadow | None,
    request: UpdateRequest,
    *,
    current_version: int,
    now: int,
    max_state_bytes: int,
) -> UpdateOutcome:
    """Merge an update into a shadow (``previous`` None when it does not exist or was deleted).

    ``current_version`` is the version the shadow has, or had before it was deleted (0 if it never existed):
    numbering continues across a delete.

    Raises:
        ShadowVersionConflictError: the request names another version.
        PayloadTooLargeError: the merged state is larger than ``max_state_bytes``.
    """
    if request.version is not None and request.version != current_version:
        raise ShadowVersionConflictError(request.version, current_version)
    state: JsonObject = copy.deepcopy(previous.state) if previous else {}
    metadata: JsonObject = copy.deepcopy(previous.metadata) if previous else {}
    if request.state is None:
        state, metadata = {}, {}
    else:
        for section, patch in request.state.items():
            if patch is None:
                state.pop(section, None)
                metadata.pop(section, None)
                continue
            section_state = state.setdefault(section, {})
            section_metadata = metadata.setdefault(section, {})
            _merge(section_state, section_metadata, patch, now)
            if not section_state:
                del state[section]
                metadata.pop(section, None)
    size = state_size(state)
    if size > max_state_bytes:
        raise PayloadTooLargeError("the shadow state after this update", size, max_state_bytes)
    shadow = Shadow(state, metadata, current_version + 1)
    accepted = _with_token(
        {
            "state": copy.deepcopy(request.state),
            "metadata": _patch_metadata(request.state, now) if request.state is not None else {},
            "version": shadow.version,
            "timestamp": now,
        },
        request.client_token,
    )
    documents: JsonObject = {}
    if previous is not None:
        documents["previous"] = _snapshot(previous)
    documents["current"] = _snapshot(shadow)
    documents["timestamp"] = now
    _with_token(documents, request.client_token)
    delta_state = shadow_delta(shadow)
    delta = None
    if delta_state:
        delta = _with_token(
            {
                "state": delta_state,
                "metadata": _delta_metadata(delta_state, metadata.get("desired") or {}),
                "version": shadow.version,
                "timestamp": now,
            },
            request.client_token,
        )
    return UpdateOutcome(shadow, accepted, documents, delta)


def get_document(shadow: Shadow, *, now: int) -> JsonObject:
    """The ``/get/accepted`` document: state with its delta, metadata, version, timestamp."""
    state = copy.deepcopy(shadow.state)
    delta = shadow_delta(shadow)
    if delta:
        state["delta"] = delta
    return {
        "state": state,
        "metadata": copy.deepcopy(shadow.metadata),
        "version": shadow.version,
        "timestamp": now,
    }


def delete_document(version: int, *, now: int) -> JsonObject:
    """The ``/delete/accepted`` document."""
    return {"version": version, "timestamp": now}


def error_document(code: int, message: str, *, now: int, client_token: str | None) -> JsonObject:
    """The error document AWS publishes on ``/rejected`` topics."""
    return _with_token({"code": code, "message": message, "timestamp": now}, client_token)


def encode_document(document: Mapping[str, Json]) -> bytes:
    """Compact UTF-8 JSON, as shadows are stored and sent."""
    return _encode(document).encode()
