"""How ``edgewise telemetry ...`` reads its shared options: times, durations, sizes, and the stream selection.

Times are durations back from now (``15m``, ``1h``, ``7d``), ISO 8601 times (``2026-12-07T06:30:00Z``) or
milliseconds since the epoch; durations and instants are parsed by the cloud's own query parser, so the CLI and
the API accept the same text. Every parser exits with an error naming the option it read.
"""

from __future__ import annotations

import re
import time
from typing import Annotated

import typer

from edgewise.cli.connection import fail

_SIZE = re.compile(r"(?P<amount>[0-9]{1,19})\s*(?P<unit>b|kb|mb|gb|tb|kib|mib|gib|tib)?", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
#: A time given as a duration back from now (``15m``), not an instant (ms, or ISO with '-' and ':').
_RELATIVE = re.compile(r"[0-9]+[a-zA-Z]+")

ThingOption = Annotated[
    str | None, typer.Option("--thing", help="Only this thing's messages.", show_default=False)
]
StreamOption = Annotated[
    str | None,
    typer.Option("--stream", help="Only this stream (a device topic is a stream).", show_default=False),
]
UntilOption = Annotated[
    str | None,
    typer.Option("--until", help="End (exclusive): a duration ago, an ISO time or ms.", show_default=False),
]


def current_ms() -> int:
    """Now, in ms since the epoch: the moment durations back from now count from."""
    return time.time_ns() // 1_000_000


def parse_time(option: str, text: str, *, now_ms: int) -> int:
    """``text`` as ms since the epoch: a duration back from ``now_ms`` (``1h``), an ISO time, or ms; exits with
    an error naming ``option`` otherwise."""
    from edgewise.cloud.errors import InvalidRequestError
    from edgewise.cloud.telemetry import query

    try:
        if _RELATIVE.fullmatch(text.strip()):
            return max(0, now_ms - query.parse_duration(option, text.strip()))
        return query.parse_instant(option, text)
    except InvalidRequestError as exc:
        fail(f"{option}: {exc.problem}")


def parse_duration(option: str, text: str) -> int:
    """``text`` (``500ms``, ``30s``, ``15m``, ``1h``, ``7d``, ``2w``) in ms; exits with an error naming ``option``."""
    from edgewise.cloud.errors import InvalidRequestError
    from edgewise.cloud.telemetry import query

    try:
        return query.parse_duration(option, text)
    except InvalidRequestError as exc:
        fail(f"{option}: {exc.problem}")


def parse_size(option: str, text: str) -> int:
    """``text`` (``500``, ``64KiB``, ``100MB``, ``2GiB``) in bytes; exits with an error naming ``option``."""
    from edgewise.cloud.telemetry.schemas import MAX_BYTES

    match = _SIZE.fullmatch(text.strip())
    if match is None:
        fail(
            f"{option}: {text!r} is not a size: give bytes, or a number and KB, MB, GB, TB, KiB, MiB, GiB or TiB"
        )
    size = int(match["amount"]) * _SIZE_UNITS[(match["unit"] or "b").lower()]
    if not 1 <= size <= MAX_BYTES:
        fail(f"{option}: {text!r} must be from 1 byte to {MAX_BYTES} bytes")
    return size
