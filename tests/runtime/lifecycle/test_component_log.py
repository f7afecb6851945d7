"""Component log files: the line format and size-based rotation."""

from __future__ import annotations

import re
from pathlib import Path

from edgewise.runtime.lifecycle.logs import ComponentLog, format_line


def test_line_has_utc_millisecond_time_level_step_and_text() -> None:
    line = format_line("Run", "INFO", "hello\nworld", now=1_795_633_200.1234)

    assert line == "2026-11-25T19:00:00.123Z [INFO] (Run) hello world\n"


def test_log_is_created_on_first_write_and_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "a.log"
    log = ComponentLog(path, max_bytes=10_000, backups=2)
    assert not path.exists()

    log.write("Run", "INFO", "one")
    log.write("Run", "WARN", "two")
    log.close()
    reopened = ComponentLog(path, max_bytes=10_000, backups=2)
    reopened.write("lifecycle", "INFO", "three")
    reopened.close()

    written = [re.sub(r"^\S+ ", "", line) for line in path.read_text().splitlines()]
    assert written == ["[INFO] (Run) one", "[WARN] (Run) two", "[INFO] (lifecycle) three"]


def test_log_rotates_before_growing_past_max_bytes_and_keeps_backups(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    line_size = len(format_line("Run", "INFO", "line 0"))
    log = ComponentLog(path, max_bytes=2 * line_size, backups=2)

    for number in range(7):
        log.write("Run", "INFO", f"line {number}")
    log.close()

    def texts(file: Path) -> list[str]:
        return [
            line.rsplit(" ", 2)[-2] + " " + line.rsplit(" ", 1)[-1] for line in file.read_text().splitlines()
        ]

    assert texts(path) == ["line 6"]
    assert texts(tmp_path / "a.log.1") == ["line 4", "line 5"]
    assert texts(tmp_path / "a.log.2") == ["line 2", "line 3"]
    assert not (tmp_path / "a.log.3").exists()
    assert all(file.stat().st_size <= 2 * line_size for file in tmp_path.iterdir())


def test_log_without_backups_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    log = ComponentLog(path, max_bytes=len(format_line("Run", "INFO", "line 0")), backups=0)

    log.write("Run", "INFO", "line 0")
    log.write("Run", "INFO", "line 1")
    log.close()

    assert path.read_text().endswith("line 1\n")
    assert list(tmp_path.iterdir()) == [path]


def test_write_failure_is_survived(tmp_path: Path) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the log directory should be")
    log = ComponentLog(blocker / "a.log", max_bytes=1000, backups=1)

    log.write("Run", "INFO", "lost")  # must not raise

    assert blocker.read_text() == "a file where the log directory should be"
