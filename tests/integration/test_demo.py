"""``edgewise demo`` as ``make demo`` runs it: a real cloud, real runtimes provisioned by claim, a model trained on
their telemetry and sent back to them, which detects the faults their simulated sensors inject (or, with
``--runtime-only``, one runtime), stopped by ``--exit-after-anomalies`` / ``--exit-after-converged`` or by
Ctrl-C, leaving no process behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgewise.cli import demo as demo_command
from edgewise.cli.demo_story import MODEL, PORTS_FILE, TEMPLATE
from edgewise.cli.demo_supervisor import MARKER, PIDS_FILE, ProcessRecord, start_time
from edgewise.cli.main import app
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

_RUN_TIMEOUT = 240.0
NUL = b"\0"
WIDE = {"COLUMNS": "200"}
HUBS = ("hub-1", "hub-2")


class DemoRun:
    """``python -m edgewise.cli demo --root ROOT ...`` with its output in a file; remembers every process the
    demo recorded while it ran."""

    def __init__(self, root: Path, *args: str) -> None:
        self.root = root
        self.output_file = root.parent / f"{root.name}-{len(list(root.parent.glob('*.out')))}.out"
        with self.output_file.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "edgewise.cli", "demo", "--root", str(root), *args],
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, "COLUMNS": "160"},
            )
        self.recorded: set[ProcessRecord] = set()

    @property
    def output(self) -> str:
        return self.output_file.read_text(errors="replace")

    def _note_processes(self) -> None:
        try:
            saved = json.loads((self.root / PIDS_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return
        self.recorded |= {ProcessRecord(p["name"], p["pid"], p["started"]) for p in saved}

    def wait_output(self, text: str) -> None:
        def seen() -> bool:
            self._note_processes()
            if self.process.poll() is not None:
                raise AssertionError(f"the demo exited {self.process.returncode}:\n{self.output}")
            return text in self.output

        wait_until(seen, timeout=_RUN_TIMEOUT, what=f"{text!r} in the demo's output")

    def wait_exit(self) -> int:
        def exited() -> bool:
            self._note_processes()
            return self.process.poll() is not None

        wait_until(exited, timeout=_RUN_TIMEOUT, what="the demo to exit")
        return self.process.returncode


def processes_using(root: Path) -> list[str]:
    """Every process on this machine whose command line or environment names ``root``."""
    needle = str(root).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if (needle in cmdline or needle in environ) and start_time(int(proc.name)) is not None:
            found.append(f"{proc.name}: {cmdline.replace(NUL, b' ').decode(errors='replace')}")
    return found


def assert_nothing_left(run: DemoRun) -> None:
    assert run.recorded, "the demo recorded no process"
    assert [record for record in run.recorded if record.is_running()] == []
    assert processes_using(run.root) == []
    assert not (run.root / PIDS_FILE).exists()


def prepared_root(parent: Path) -> Path:
    """A demo folder whose cloud takes its ports from this worker's share (the demo records them there)."""
    root = parent / "demo"
    root.mkdir()
    (root / MARKER).write_text("")
    ports = {name: free_port() for name in ("api", "mqtt", "dataPlane", "httpsPublish")}
    (root / PORTS_FILE).write_text(json.dumps(ports))
    return root


def test_the_story_detects_the_faults_the_hubs_inject_and_a_second_run_reuses_the_folder(
    tmp_path: Path,
) -> None:
    root = prepared_root(tmp_path)
    first = DemoRun(root, "--hubs", "2", "--fast", "--exit-after-anomalies", "3", "--timeout", "200")
    assert first.wait_exit() == 0, first.output
    output = first.output
    assert "Console: http://127.0.0.1:" in output
    assert re.search(r"Login link \(one use\): http://127\.0\.0\.1:\d+/console/\S+", output), output
    for thing in HUBS:
        assert f"{thing}: provisioned by claim (template {TEMPLATE})" in output
        assert (root / "devices" / thing / "identity" / "edgewise.yaml").is_file()
    assert "every hub runs the sensor hubs" in output
    # The model trains on what the hubs' stream-manager exports delivered: 120 readings of each hub at least.
    rows = re.search(r"dataset hub-readings-\d+: (\d+) readings exported through stream manager", output)
    assert rows is not None, output
    assert int(rows.group(1)) >= 2 * 120, output
    assert f"model {MODEL} version 1 (" in output
    assert f"every hub runs model {MODEL} version 1" in output
    # Each detection is a result of that model version that flagged a reading the hub had injected a fault into.
    detections = re.findall(
        r"^  [0-9:.]+ (hub-[12]): anomaly \(score [-0-9.]+\): the (spike|stuck|vibration) fault",
        output,
        flags=re.MULTILINE,
    )
    assert len(detections) >= 3, output
    found = re.search(r"Detected (\d+) injected faults in (\d+) results", output)
    assert found is not None, output
    assert int(found.group(1)) == len(detections)
    assert {record.name for record in first.recorded} >= {"cloud", *HUBS}
    assert_nothing_left(first)

    # A second run on the same folder reuses the cloud and the hubs' identities; Ctrl-C stops it: the hubs'
    # runtimes first, then the cloud.
    second = DemoRun(root, "--hubs", "2", "--fast")
    second.wait_output("Waiting for 120 readings")
    second.process.send_signal(signal.SIGINT)
    assert second.wait_exit() == 0, second.output
    for thing in HUBS:
        assert f"{thing}: provisioned by an earlier run" in second.output
    assert "already published with this recipe" in second.output
    stopping = [line for line in second.output.splitlines() if line.startswith("Stopping")]
    assert stopping == [f"Stopping {', '.join(HUBS)}", "Stopping cloud"], second.output
    assert_nothing_left(second)


def test_the_runtime_only_demo_converges_and_stops_on_sigint(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    first = DemoRun(root, "--runtime-only", "--exit-after-converged")
    assert first.wait_exit() == 0, first.output
    assert "Converged after" in first.output
    assert_nothing_left(first)

    second = DemoRun(root, "--runtime-only")
    second.wait_output("Try: edgewise runtime component list")
    second.process.send_signal(signal.SIGTERM)
    assert second.wait_exit() == 0, second.output
    assert "Stopping runtime" in second.output
    assert_nothing_left(second)


def test_a_demo_refuses_to_start_while_a_previous_one_still_runs(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    (root / "devices" / "hub-1").mkdir(parents=True)
    (root / ".edgewise-demo").write_text("")
    survivor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        started = start_time(survivor.pid)
        records = [{"name": "hub-1", "pid": survivor.pid, "started": started}]
        (root / PIDS_FILE).write_text(json.dumps(records))
        result = CliRunner().invoke(app, ["demo", "--runtime-only", "--root", str(root)], env=WIDE)
        assert result.exit_code == 1
        assert f"hub-1 (pid {survivor.pid})" in result.stderr
        assert f"kill {survivor.pid}" in result.stderr
        assert (root / "devices" / "hub-1").is_dir()
        assert json.loads((root / PIDS_FILE).read_text()) == records
    finally:
        survivor.kill()
        survivor.wait()


def test_a_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "devices").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["demo", "--runtime-only", "--root", str(tmp_path)], env=WIDE)
    assert result.exit_code == 1
    assert f"--root: {tmp_path} holds files the demo did not make" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "devices").is_dir()


def test_without_the_extras_the_demo_says_how_to_get_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_command, "CLOUD_MODULES", ("fastapi", "edgewise_no_such_module"))
    result = CliRunner().invoke(app, ["demo", "--root", str(tmp_path / "demo")], env=WIDE)
    assert result.exit_code == 1
    assert "pip install 'edgewise[all]'" in result.stderr
    assert "edgewise_no_such_module" in result.stderr
    assert not (tmp_path / "demo").exists()


def test_each_exit_flag_belongs_to_its_demo(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    story = CliRunner().invoke(app, ["demo", "--root", str(root), "--exit-after-converged"], env=WIDE)
    assert story.exit_code == 1
    assert "--exit-after-converged: only with --runtime-only" in story.stderr
    runtime = CliRunner().invoke(
        app, ["demo", "--root", str(root), "--runtime-only", "--exit-after-anomalies", "1"], env=WIDE
    )
    assert runtime.exit_code == 1
    assert "--exit-after-anomalies: the runtime-only demo has no model" in runtime.stderr
    assert not root.exists()
