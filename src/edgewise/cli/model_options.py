"""What the ``edgewise model ...`` commands (:mod:`edgewise.cli.model` and the groups it adds) share: the model
name argument and how they show the registry's times and numbers (scores, sizes, latencies).
"""

from __future__ import annotations

import datetime
from typing import Annotated

import typer

ModelArgument = Annotated[str, typer.Argument(help="Model name.")]


def shown_time(text: str | None) -> str:
    """An ISO time from the API as ``YYYY-MM-DD HH:MM:SS``; empty for none."""
    if not text:
        return ""
    return datetime.datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M:%S")


def shown_number(value: object, unit: str = "") -> str:
    """A number to 4 significant digits, followed by ``unit``; empty for anything else (none, a flag)."""
    return f"{value:.4g}{unit}" if isinstance(value, int | float) and not isinstance(value, bool) else ""
