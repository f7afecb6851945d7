"""Counting the statements a piece of store code sends, for the tests that check how many queries it takes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa


@contextmanager
def selects_sent(engine: sa.Engine | sa.Connection) -> Iterator[list[str]]:
    """The SELECT statements sent through ``engine`` inside the block, in order."""
    selects: list[str] = []

    def executed(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    sa.event.listen(engine, "before_cursor_execute", executed)
    try:
        yield selects
    finally:
        sa.event.remove(engine, "before_cursor_execute", executed)
