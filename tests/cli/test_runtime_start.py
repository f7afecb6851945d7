"""``edgewise runtime start``: every option reaches the runtime process's own command line, and that parses it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgewise.cli import runtime as runtime_command
from edgewise.cli.main import app
from edgewise.runtime.__main__ import parse_args


def test_start_hands_every_option_to_the_runtime_which_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    executed: list[list[str]] = []

    def record_exec(path: str, args: list[str]) -> None:
        executed.append(args)

    # The command replaces itself with the runtime; recording the exec is the only way to see what it passes.
    monkeypatch.setattr(runtime_command.os, "execv", record_exec)
    result = CliRunner().invoke(
        app,
        [
            "runtime",
            "start",
            "--root",
            str(tmp_path),
            "--cgroup-root",
            str(tmp_path / "cg"),
            "--reboot-command",
            "systemctl reboot --no-wall",
            "--ipc-handshake-timeout",
            "2.5",
        ],
    )

    assert result.exit_code == 0, result.output
    [args] = executed
    assert args[:3] == [sys.executable, "-m", "edgewise.runtime"]
    settings = parse_args(args[3:])
    assert settings.root == tmp_path
    assert settings.cgroup_root == tmp_path / "cg"
    assert settings.reboot_command == ("systemctl", "reboot", "--no-wall")
    assert settings.ipc_handshake_timeout == 2.5


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--ipc-handshake-timeout", "0"], "--ipc-handshake-timeout: must be a positive number of seconds"),
        (["--reboot-command", "  "], "--reboot-command: must name a command"),
    ],
)
def test_the_runtime_refuses_bad_values_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_args(["--root", str(tmp_path), *flags])

    assert caught.value.code == 2
    assert message in capsys.readouterr().err
