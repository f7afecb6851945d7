"""The demo folder: which processes of a previous demo still run, whatever ``demo.pids`` holds."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from edgewise.cli.demo_supervisor import MARKER, PIDS_FILE, DemoSupervisor, ProcessRecord, start_time


def supervisor(root: Path) -> DemoSupervisor:
    return DemoSupervisor(root, Console(quiet=True))


def test_a_recorded_pid_now_used_by_another_process_does_not_count_as_the_demo(tmp_path: Path) -> None:
    (tmp_path / MARKER).write_text("")
    (tmp_path / "devices").mkdir()
    (tmp_path / "runtime").mkdir()
    reused = [{"name": "cloud", "pid": os.getpid(), "started": "not-when-this-process-started"}]
    (tmp_path / PIDS_FILE).write_text(json.dumps(reused))
    supervisor(tmp_path).prepare()
    # The hubs' roots are kept for the next run; the runtime-only root is cleared.
    assert (tmp_path / "devices").is_dir()
    assert not (tmp_path / "runtime").exists()
    recorded = json.loads((tmp_path / PIDS_FILE).read_text())
    assert recorded == [{"name": "edgewise demo", "pid": os.getpid(), "started": start_time(os.getpid())}]
    assert ProcessRecord(**recorded[0]).is_running()


def test_a_process_that_is_gone_has_no_start_time() -> None:
    assert start_time(-1) is None
    assert start_time(os.getpid()) is not None


@settings(max_examples=200, deadline=None)
@given(content=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_whatever_demo_pids_holds_prepare_starts_or_refuses_with_a_message(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / MARKER).write_text("")
        (root / PIDS_FILE).write_bytes(content)
        refused: typer.Exit | None = None
        try:
            supervisor(root).prepare()
        except typer.Exit as exc:
            refused = exc
        if refused is not None:
            assert refused.exit_code == 1
            assert (root / PIDS_FILE).read_bytes() == content
        else:
            assert json.loads((root / PIDS_FILE).read_text())[0]["pid"] == os.getpid()


@pytest.mark.parametrize(
    "content",
    [b"[1]", b"null", b'{"name": "cloud"}', b'[{"name": "cloud", "pid": "x", "started": "1"}]', b"\xff"],
)
def test_an_unreadable_demo_pids_is_refused_and_kept(tmp_path: Path, content: bytes) -> None:
    (tmp_path / MARKER).write_text("")
    (tmp_path / PIDS_FILE).write_bytes(content)
    with pytest.raises(typer.Exit):
        supervisor(tmp_path).prepare()
    assert (tmp_path / PIDS_FILE).read_bytes() == content
