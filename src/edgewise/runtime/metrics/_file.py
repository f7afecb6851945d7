"""The metrics file ``ROOT/metrics/current.json`` the runtime keeps up to date for the CLI.

Format: ``{"metrics": [{"component", "name", "unit", "latest", "count", "sum", "min", "max", "updatedMs"}]}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from edgewise.runtime.files import write_atomically, write_if_changed
from edgewise.runtime.metrics._registry import MetricSummary
from edgewise.runtime.metrics.errors import MetricError


def metrics_file(root: Path) -> Path:
    """Where the runtime at ``root`` writes its metrics."""
    return root / "metrics" / "current.json"


def save_metrics(path: Path, summaries: Iterable[MetricSummary]) -> None:
    """Replace ``path`` with ``summaries`` so that a reader sees either the old file or the new one. Blocks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, _metrics_text(summaries))


def clear_metrics(path: Path) -> None:
    """Make ``path`` hold no metrics; a file that already holds none is left alone. Blocks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_if_changed(path, _metrics_text([]))


def _metrics_text(summaries: Iterable[MetricSummary]) -> bytes:
    return json.dumps({"metrics": [summary.to_json() for summary in summaries]}, indent=1).encode("utf-8")


def load_metrics(path: Path) -> list[MetricSummary]:
    """The summaries in ``path``; none when the file does not exist. Blocks.

    Raises:
        MetricError: the file is not a metrics file.
        OSError: it cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MetricError(f"Metrics file {str(path)!r} is not JSON: {exc}") from None
    items = data.get("metrics") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise MetricError(f"Metrics file {str(path)!r} has no 'metrics' list of objects")
    return [MetricSummary.from_json(item) for item in items]
