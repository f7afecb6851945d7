"""JSON for IPC payloads: orjson where it is installed (``pip install 'edgewise[fast]'``), the json module otherwise.

Both give the same values for the same input. orjson is only used where its result is the json module's:

- :func:`loads` falls back to ``json.loads`` for whatever orjson refuses (``NaN``, ``Infinity``, numbers that
  overflow a double, lone surrogates, UTF-16/32 or a byte-order mark), so it accepts exactly what the json
  module accepts; and orjson turns integers beyond 64 bits into floats, so a result holding a float that
  large is decoded again with ``json.loads``.
- :func:`dumps` is compact UTF-8 (``separators=(",", ":")``, ``ensure_ascii=False``). orjson refuses
  non-string keys and integers beyond 64 bits (so the json module encodes those) and writes ``null`` for NaN
  and infinities where the json module writes ``NaN``/``Infinity``, so an output that holds ``null`` is
  encoded again with the json module. Floats may differ in spelling only (``1e16`` against ``1e+16``).

The IPC clients decode with their language's JSON parser (``json.loads`` in awsiotsdk), so either spelling
is read the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

_json_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# orjson turns integers outside [-2**63, 2**64) into floats; any float of that size gets a second look.
_INT_LOW = -(2.0**63)
_INT_HIGH = 2.0**64


def _json_dumps(value: Any) -> bytes:
    return _json_encode(value).encode()


def _json_loads(data: bytes) -> Any:
    return json.loads(data)


def _orjson_dumps(value: Any) -> bytes:
    try:
        encoded: bytes = orjson.dumps(value)
    except TypeError:
        return _json_dumps(value)
    if b"null" in encoded:
        return _json_dumps(value)  # None, or a NaN or infinity that the json module spells differently
    return encoded


def _orjson_loads(data: bytes) -> Any:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _json_loads(data)
    if _has_large_float(value):
        return _json_loads(data)
    return value


def _has_large_float(value: Any) -> bool:
    """True when ``value`` holds a float that orjson may have made from an integer beyond 64 bits."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float and not _INT_LOW < item < _INT_HIGH:
            return True
    return False


try:
    import orjson
except ImportError:
    _HAVE_ORJSON = False
else:
    _HAVE_ORJSON = True

#: The library doing the work, ``orjson`` or ``json``, for logs and benchmarks.
BACKEND = "orjson" if _HAVE_ORJSON else "json"
#: Compact UTF-8 JSON of a value; raises TypeError/ValueError as ``json.dumps`` does.
dumps: Callable[[Any], bytes] = _orjson_dumps if _HAVE_ORJSON else _json_dumps
#: The value of JSON bytes; raises ValueError (``json.JSONDecodeError``) as ``json.loads`` does.
loads: Callable[[bytes], Any] = _orjson_loads if _HAVE_ORJSON else _json_loads
