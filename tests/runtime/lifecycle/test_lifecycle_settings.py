"""Lifecycle settings refuse values that cannot work, naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgewise.runtime.lifecycle import LifecycleSettings


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("error_threshold", 0, "error_threshold must be at least 1, not 0"),
        ("error_window", 0.0, "error_window must be positive, not 0.0"),
        ("grace_period", -1.0, "grace_period must not be negative, not -1.0"),
        ("restart_backoff_base", -0.5, "restart_backoff_base must not be negative, not -0.5"),
        (
            "restart_backoff_cap",
            0.5,
            "restart_backoff_cap (0.5) must not be below restart_backoff_base (1.0)",
        ),
        ("run_as", ":staff", "run_as must be 'user' or 'user:group', not ':staff'"),
        ("run_as", "svc:", "run_as must be 'user' or 'user:group', not 'svc:'"),
        ("log_max_bytes", 0, "log_max_bytes must be positive, not 0"),
        ("log_backups", -1, "log_backups must not be negative, not -1"),
    ],
)
def test_bad_setting_is_refused_with_its_name(field: str, value: Any, problem: str) -> None:
    with pytest.raises(ValueError, match="Invalid lifecycle settings: ") as caught:
        LifecycleSettings(work_dir=Path("w"), log_dir=Path("l"), **{field: value})

    assert problem in str(caught.value)


def test_defaults_follow_greengrass() -> None:
    settings = LifecycleSettings(work_dir=Path("w"), log_dir=Path("l"), run_as="svc:staff")

    assert (settings.error_threshold, settings.error_window, settings.grace_period) == (3, 3600.0, 5.0)
