"""Small offline tables for the training tests: synthetic data and river's WaterFlow."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def times(count: int, step_ms: int = 60_000) -> pa.Array:
    return pa.array(np.arange(count, dtype=np.int64) * step_ms, pa.timestamp("ms", tz="UTC"))


def breast_cancer() -> pa.Table:
    """sklearn's breast cancer data (569 rows, 30 features), label ``diagnosis`` 0/1."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    columns = {f"f{index}": data.data[:, index] for index in range(data.data.shape[1])}
    return pa.table({**columns, "diagnosis": data.target})


def linear_regression(rows: int = 600, seed: int = 0) -> pa.Table:
    """``target = 2a - b + noise``; ``c`` and ``d`` are noise; rows given out of time order."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 4))
    target = 2 * X[:, 0] - X[:, 1] + 0.1 * rng.normal(size=rows)
    shuffled = rng.permutation(rows)
    return pa.table(
        {
            "thing": pa.array(["pump-1"] * rows),
            "timestamp": times(rows).take(pa.array(shuffled)),
            "a": X[shuffled, 0],
            "b": X[shuffled, 1],
            "c": X[shuffled, 2],
            "d": X[shuffled, 3],
            "target": target[shuffled],
        }
    )


def sine(rows: int = 800, period: int = 50, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    level = np.sin(np.arange(rows) * 2 * np.pi / period) + 0.05 * rng.normal(size=rows)
    return pa.table({"thing": pa.array(["tank"] * rows), "timestamp": times(rows), "level": level})


def water_flow() -> pa.Table:
    """Hours 600-900 of river's WaterFlow; ``label`` marks the low-flow segment (hours 872-886) as anomalous.

    This slice puts the labelled segment in the latest fifth, the held-out part of a time split.
    """
    from river import datasets

    rows = list(datasets.WaterFlow())[600:900]  # type: ignore[no-untyped-call]
    flow = np.array([value for _, value in rows], dtype=np.float64)
    stamps = pa.array([features["Time"] for features, _ in rows], pa.timestamp("ms", tz="UTC"))
    return pa.table({"timestamp": stamps, "flow": flow, "label": (flow < 95).astype(np.int64)})


def gaussian_blob(rows: int = 500, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 3))
    return pa.table({"timestamp": times(rows), "x": X[:, 0], "y": X[:, 1], "z": X[:, 2]})


def early_faults(rows: int = 400, seed: int = 4) -> pa.Table:
    """A rare ``fault`` (about 8 % of the first half, none later) that shifts ``b`` by 6; ``a`` is noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 2))
    fault = (rng.random(rows) < 0.08) & (np.arange(rows) < rows // 2)
    X[fault, 1] += 6.0
    return pa.table({"timestamp": times(rows), "a": X[:, 0], "b": X[:, 1], "fault": fault.astype(np.int64)})
