"""Downsampling a numeric field of JSON payloads into time buckets (mean, min, max, count), in SQL.

A field is a path into the payload: keys joined by ``.``, array indexes in brackets, e.g. ``a.b[0].c`` or
``[2].value`` for a payload that is an array. Keys are 1-128 letters, digits, ``_`` and ``-``; a path has at
most :data:`MAX_DEPTH` steps and :data:`MAX_FIELD_LENGTH` characters. :func:`parse_field` says where a path
breaks the rules.

Bucket ``n`` holds the messages with ``since + n * every <= timestamp < since + (n + 1) * every``; the
arithmetic is integer division on ``timestamp_ms``, which SQLite and PostgreSQL do alike, and the field's
value is read with each engine's JSON functions, only where it is a JSON number: rows whose field is missing or
not a number are counted in ``skipped`` and left out. Buckets without a number are not returned.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from edgewise.cloud.errors import InvalidRequestError
from edgewise.cloud.telemetry.models import TelemetryMessage
from edgewise.cloud.telemetry.query import MessageFilter

MAX_FIELD_LENGTH = 256
MAX_DEPTH = 32
MAX_KEY_LENGTH = 128
MAX_INDEX = 2**31 - 1
#: The most buckets one series may have: ``(until - since) / every``.
MAX_BUCKETS = 10_000

Stat = Literal["mean", "min", "max", "count"]
STATS: tuple[Stat, ...] = ("mean", "min", "max", "count")

_KEY = re.compile(r"[A-Za-z0-9_-]+")
_INDEX = re.compile(r"\[(0|[1-9][0-9]*)\]")


@dataclass(frozen=True)
class FieldPath:
    """A parsed field path: its steps, keys as strings and array indexes as integers."""

    steps: tuple[str | int, ...]

    def __str__(self) -> str:
        text = ""
        for step in self.steps:
            text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
        return text

    def sqlite_path(self) -> str:
        """The path as SQLite's JSON functions read it (keys quoted, so ``-`` is a plain character)."""
        return "$" + "".join(f"[{step}]" if isinstance(step, int) else f'."{step}"' for step in self.steps)


def parse_field(text: str, *, field: str = "field") -> FieldPath:
    """Parse a field path such as ``a.b[0].c``.

    Raises:
        InvalidRequestError: the path breaks a rule; the message names ``field``, the position (from 1) and the
            character at fault.
    """
    if not text:
        raise InvalidRequestError(field, "is empty; give a path into the payload such as a.b[0].c")
    if len(text) > MAX_FIELD_LENGTH:
        raise InvalidRequestError(field, f"is {len(text)} characters long; at most {MAX_FIELD_LENGTH}")
    steps: list[str | int] = []
    position = 0
    while position < len(text):
        index = _INDEX.match(text, position)
        if index is not None:
            number = int(index[1])
            if number > MAX_INDEX:
                raise InvalidRequestError(
                    field, f"index {number} at position {position + 2} is above {MAX_INDEX}"
                )
            steps.append(number)
            position = index.end()
        elif text[position] == "[":
            raise InvalidRequestError(
                field,
                f"{text!r}: the '[' at position {position + 1} must start an index such as [0]"
                " (digits without leading zeros, then ']')",
            )
        else:
            if steps:
                if text[position] != ".":
                    raise InvalidRequestError(
                        field,
                        f"{text!r}: expected '.' or '[' at position {position + 1}, found {text[position]!r}",
                    )
                position += 1
            key = _KEY.match(text, position)
            if key is None:
                found = repr(text[position]) if position < len(text) else "the end"
                raise InvalidRequestError(
                    field,
                    f"{text!r}: expected a key (letters, digits, '_', '-') or '[index]' at position"
                    f" {position + 1}, found {found}",
                )
            if len(key[0]) > MAX_KEY_LENGTH:
                raise InvalidRequestError(
                    field,
                    f"{text!r}: the key at position {position + 1} is longer than {MAX_KEY_LENGTH} characters",
                )
            steps.append(key[0])
            position = key.end()
        if len(steps) > MAX_DEPTH:
            raise InvalidRequestError(field, f"{text!r} has more than {MAX_DEPTH} steps")
    return FieldPath(tuple(steps))


def bucket_count(since: int, until: int, every: int) -> int:
    """How many buckets of ``every`` milliseconds cover ``since <= t < until``."""
    return -(-(until - since) // every)


def check_buckets(since: int, until: int, every: int) -> None:
    """Refuse a series of more than :data:`MAX_BUCKETS` buckets.

    Raises:
        InvalidRequestError: too many buckets; the error names ``every``.
    """
    count = bucket_count(since, until, every)
    if count > MAX_BUCKETS:
        raise InvalidRequestError(
            "every",
            f"{every}ms makes {count} buckets between since and until; at most {MAX_BUCKETS}:"
            " choose a larger bucket or a shorter range",
        )


@dataclass(frozen=True)
class Bucket:
    """The numbers of one bucket, starting at ``start`` (ms)."""

    start: int
    count: int
    mean: float
    min: float
    max: float

    def stat(self, name: Stat) -> float:
        """The statistic called ``name``."""
        return float(self.count) if name == "count" else float(getattr(self, name))


@dataclass(frozen=True)
class Series:
    """A downsampled field: the buckets that hold numbers, oldest first, and how many rows had none."""

    buckets: Sequence[Bucket]
    skipped: int


def _number_of(session: Session, path: FieldPath) -> sa.ColumnElement[float]:
    """The field's value as a float where it is a JSON number, else NULL."""
    column = TelemetryMessage.payload_json
    if session.get_bind().dialect.name == "postgresql":
        steps = sa.literal([str(step) for step in path.steps], postgresql.ARRAY(sa.Text))
        found = column.op("#>", return_type=sa.JSON)(steps)
        # CASE guards the cast: PostgreSQL never evaluates it for a value that is not a number.
        return sa.case(
            (
                sa.func.json_typeof(found) == "number",
                sa.cast(column.op("#>>", return_type=sa.Text)(steps), sa.Float),
            ),
            else_=sa.null(),
        )
    sqlite_path = path.sqlite_path()
    return sa.case(
        (
            sa.func.json_type(column, sqlite_path).in_(("integer", "real")),
            sa.cast(sa.func.json_extract(column, sqlite_path), sa.Float),
        ),
        else_=sa.null(),
    )


def downsample(session: Session, selection: MessageFilter, *, path: FieldPath, every: int) -> Series:
    """``path``'s numbers in the messages of ``selection`` in buckets of ``every`` ms from ``selection.since``.

    ``selection`` must have both ``since`` and ``until``, at most :data:`MAX_BUCKETS` buckets apart.
    """
    if selection.since is None or selection.until is None:
        raise ValueError("a series needs both since and until")
    since = selection.since
    value = _number_of(session, path).label("value")
    rows = (
        sa.select(((TelemetryMessage.timestamp_ms - since) // every).label("bucket"), value)
        .where(*selection.conditions())
        .subquery()
    )
    result = session.execute(
        sa.select(
            rows.c.bucket,
            sa.func.count(),
            sa.func.count(rows.c.value),
            sa.func.avg(rows.c.value),
            sa.func.min(rows.c.value),
            sa.func.max(rows.c.value),
        )
        .group_by(rows.c.bucket)
        .order_by(rows.c.bucket)
    ).all()
    buckets: list[Bucket] = []
    skipped = 0
    for bucket, rows_in_bucket, numbers, mean, low, high in result:
        skipped += int(rows_in_bucket) - int(numbers)
        if numbers:
            buckets.append(
                Bucket(
                    start=since + int(bucket) * every,
                    count=int(numbers),
                    mean=float(mean),
                    min=float(low),
                    max=float(high),
                )
            )
    return Series(buckets, skipped)
