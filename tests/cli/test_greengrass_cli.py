"""``greengrass-cli``: the Greengrass developer guide's command lines parse to the right operation and request,
unknown or unsupported flags fail naming the flag, and ``logs get`` filters Edgewise logs as documented."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edgewise.cli import greengrass_cli as gg
from edgewise.cli.greengrass_logs import (
    LogQueryError,
    log_sources,
    matches,
    parse_filters,
    parse_lines,
    parse_time_window,
)
from edgewise.runtime.greengrass_cli_script import script_text, write_greengrass_cli
from edgewise.runtime.paths import RootPaths
from tests.support.waiting import wait_until

NOW = datetime(2026, 11, 25, 19, 0, 0, tzinfo=UTC).astimezone()


def parse(command_line: str) -> argparse.Namespace:
    """Parse a command line as typed after ``greengrass-cli``."""
    return gg.parse_args(shlex.split(command_line))


def one_line(text: str) -> str:
    """Rich wraps error messages at the terminal width; compare them as one line."""
    return " ".join(text.split())


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home with the guide's ``~/greengrassv2/{recipes,artifacts}``."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("recipes", "artifacts"):
        (tmp_path / "greengrassv2" / name).mkdir(parents=True)
    return tmp_path


# -- command lines → operations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command_line", "handler", "fields"),
    [
        ("component list", gg.component_list, {}),
        ("component details --name MyComponent", gg.component_details, {"name": "MyComponent"}),
        ("component details -n MyComponent", gg.component_details, {"name": "MyComponent"}),
        ("component restart --names MyComponent", gg.component_restart, {"names": "MyComponent"}),
        ('component restart --names "A,B"', gg.component_restart, {"names": "A,B"}),
        ("component stop --names MyComponent", gg.component_stop, {"names": "MyComponent"}),
        ("deployment status -i 6f0c-11", gg.deployment_status, {"deployment_id": "6f0c-11"}),
        ("deployment status --deploymentId 6f0c-11", gg.deployment_status, {"deployment_id": "6f0c-11"}),
        ("deployment cancel -i 6f0c-11", gg.deployment_cancel, {"deployment_id": "6f0c-11"}),
        ("deployment list", gg.deployment_list, {}),
        ("get-debug-password", gg.get_debug_password, {}),
        (
            "logs get --log-file /greengrass/v2/logs/com.example.HelloWorld.log --filter level=ERROR",
            gg.logs_get,
            {"log_files": ["/greengrass/v2/logs/com.example.HelloWorld.log"], "filters": ["level=ERROR"]},
        ),
        (
            "logs get --log-dir /greengrass/v2/logs --filter installed --filter name=alpha,name=beta "
            "--time-window 2020-07-01,2020-07-01T05:00:00 --verbose --follow",
            gg.logs_get,
            {
                "log_dirs": ["/greengrass/v2/logs"],
                "filters": ["installed", "name=alpha,name=beta"],
                "windows": ["2020-07-01,2020-07-01T05:00:00"],
                "verbose": True,
                "follow": True,
            },
        ),
        ("logs get -lf a.log -ld logs -t -1h, -fol -v", gg.logs_get, {"windows": ["-1h,"], "follow": True}),
        (
            "logs get --time-window -2h15min,-1hr --log-file greengrass.log",
            gg.logs_get,
            {"windows": ["-2h15min,-1hr"], "log_files": ["greengrass.log"]},
        ),
    ],
)
def test_guide_command_lines_parse_to_their_operation(
    command_line: str, handler: gg.Handler, fields: dict[str, object]
) -> None:
    args = parse(command_line)
    assert args.handler is handler
    for name, value in fields.items():
        assert getattr(args, name) == value


@pytest.mark.parametrize(
    "command_line",
    [
        "--ggcRootPath /greengrass/v2 component list",
        "component list --ggcRootPath /greengrass/v2",
        "--ggcRootPath /elsewhere component list --ggcRootPath /greengrass/v2",
    ],
)
def test_ggc_root_path_is_taken_before_or_after_the_command_and_the_last_one_wins(command_line: str) -> None:
    assert parse(command_line).ggc_root_path == "/greengrass/v2"


def test_root_comes_from_ggc_root_path_then_edgewise_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEWISE_ROOT", "/edgewise")
    monkeypatch.setenv("GGC_ROOT_PATH", "/greengrass/v2")
    assert gg._root(parse("component list")) == Path("/greengrass/v2")
    monkeypatch.delenv("GGC_ROOT_PATH")
    assert gg._root(parse("component list")) == Path("/edgewise")
    assert gg._root(parse("--ggcRootPath /given component list")) == Path("/given")


def test_no_root_anywhere_fails_saying_how_to_give_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GGC_ROOT_PATH", raising=False)
    monkeypatch.delenv("EDGEWISE_ROOT", raising=False)
    assert gg.main(["component", "list"]) == 1
    assert "pass --ggcRootPath ROOT, or set GGC_ROOT_PATH" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("command_line", "flag"),
    [
        ("component list --all", "--all"),
        ("deployment create --recipe-dir /tmp", "--recipe-dir"),
        ("deployment create --recipe /tmp", "--recipe"),
        ("deployment list --json", "--json"),
        ("logs get --log-file a.log --grep x", "--grep"),
    ],
)
def test_unknown_flags_fail_naming_the_flag(
    command_line: str, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(command_line)
    assert exit_info.value.code == 2
    assert f"unrecognized arguments: {flag}" in capsys.readouterr().err


def test_a_missing_required_flag_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("deployment status")
    assert "-i/--deploymentId" in capsys.readouterr().err


# -- deployment create → the CreateLocalDeployment request --------------------------------------------------


def test_guide_deployment_create_builds_the_local_deployment_request(home: Path) -> None:
    args = parse(
        "deployment create --recipeDir ~/greengrassv2/recipes --artifactDir ~/greengrassv2/artifacts "
        '--merge "com.example.HelloWorld=1.0.0" --merge "com.example.Other=2.1.0" '
        """--update-config '{"com.example.HelloWorld":{"MERGE":{"Message":"friend"},"RESET":["/old"]}}' """
        '--groupId MyGroup --runWith "com.example.HelloWorld:posixUser=ggc_user:ggc_group" '
        "--failure-handling-policy do_nothing"
    )
    assert args.handler is gg.deployment_create
    assert gg.deployment_request(args) == {
        "rootComponentVersionsToAdd": {"com.example.HelloWorld": "1.0.0", "com.example.Other": "2.1.0"},
        "rootComponentsToRemove": [],
        "componentToConfiguration": {
            "com.example.HelloWorld": {"MERGE": {"Message": "friend"}, "RESET": ["/old"]}
        },
        "componentToRunWithInfo": {"com.example.HelloWorld": {"posixUser": "ggc_user:ggc_group"}},
        "failureHandlingPolicy": "DO_NOTHING",
        "groupName": "MyGroup",
        "recipeDirectoryPath": str(home / "greengrassv2" / "recipes"),
        "artifactsDirectoryPath": str(home / "greengrassv2" / "artifacts"),
    }


def test_remove_takes_comma_separated_names_and_repeats(home: Path) -> None:
    args = parse('deployment create --remove "com.example.A,com.example.B" --remove com.example.C')
    request = gg.deployment_request(args)
    assert request["rootComponentsToRemove"] == ["com.example.A", "com.example.B", "com.example.C"]
    assert request["failureHandlingPolicy"] == "ROLLBACK"
    assert "recipeDirectoryPath" not in request


def test_system_limits_join_run_with_per_component(home: Path) -> None:
    (home / "limits.json").write_text('{"com.example.B": {"memory": 102400}}')
    args = parse(
        'deployment create --runWith "com.example.A:posixUser=ggc_user" '
        """--systemLimits '{"com.example.A": {"cpus": 0.5}}' --systemLimits ~/limits.json"""
    )
    assert gg.deployment_request(args)["componentToRunWithInfo"] == {
        "com.example.A": {"posixUser": "ggc_user", "systemResourceLimits": {"cpus": 0.5}},
        "com.example.B": {"systemResourceLimits": {"memory": 102400}},
    }


def test_update_config_may_name_a_json_file(home: Path) -> None:
    (home / "config.json").write_text('{"com.example.A": {"MERGE": {"x": 1}}}')
    args = parse("deployment create --update-config ~/config.json")
    assert gg.deployment_request(args)["componentToConfiguration"] == {"com.example.A": {"MERGE": {"x": 1}}}


@pytest.mark.parametrize(
    ("command_line", "message"),
    [
        ("deployment create --systemLimits '[1]'", '--systemLimits: expected an object like {"NAME"'),
        ("deployment create --systemLimits '{oops'", "--systemLimits: not valid JSON"),
        ("deployment create --merge com.example.A", "--merge: expected NAME=VERSION, got 'com.example.A'"),
        ("deployment create --update-config '{not json'", "--update-config: not valid JSON"),
        ("deployment create --runWith A:windowsUser=me", "--runWith: expected NAME:posixUser=USER[:GROUP]"),
        ("deployment create --recipeDir ~/missing", "--recipeDir:"),
        ("deployment create --artifactDir ~/missing", "--artifactDir:"),
    ],
)
def test_unusable_deployment_flags_fail_naming_the_flag(
    home: Path, command_line: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gg.main(["--ggcRootPath", str(home), *shlex.split(command_line)]) == 1
    assert message in one_line(capsys.readouterr().err)


@pytest.mark.parametrize(("text", "names"), [("A", ["A"]), ("A,B", ["A", "B"]), ("A , B&C", ["A", "B", "C"])])
def test_names_split_on_commas_and_ampersands(text: str, names: list[str]) -> None:
    assert gg.split_names(text) == names


def test_component_block_is_the_greengrass_shape() -> None:
    block = gg.component_block(
        {
            "componentName": "MyComponent",
            "version": "1.0.0",
            "state": "RUNNING",
            "configuration": {"a": [1, 2]},
        }
    )
    assert block == 'Component Name: MyComponent\nVersion: 1.0.0\nState: RUNNING\nConfiguration: {"a":[1,2]}'


def test_get_debug_password_fails_loudly(capsys: pytest.CaptureFixture[str]) -> None:
    assert gg.main(["get-debug-password"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Edgewise has no local debug console" in one_line(captured.err)


# -- logs get ----------------------------------------------------------------------------------------------

COMPONENT_LOG = """\
2026-11-25T18:00:00.000Z [INFO] (Install) installed
2026-11-25T18:59:00.000Z [INFO] (Run) hello alpha
2026-11-25T18:59:30.000Z [WARN] (Run) disk almost full
2026-11-25T18:59:40.000Z [ERROR] (lifecycle) exited with code 3
"""


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    directory = tmp_path / "logs"
    directory.mkdir()
    (directory / "com.example.Hello.log").write_text(COMPONENT_LOG)
    local = NOW.replace(tzinfo=None)
    (directory / "edgewise.log").write_text(
        f"{local - timedelta(minutes=30):%Y-%m-%d %H:%M:%S},250 INFO edgewise.runtime.kernel: Runtime started\n"
        f"{local - timedelta(seconds=10):%Y-%m-%d %H:%M:%S},000 ERROR edgewise.runtime.deployment: boom\n"
        "Traceback (most recent call last):\n"
    )
    (directory / "notes.txt").write_text("not a log\n")
    return directory


def test_both_edgewise_line_formats_are_read(logs: Path) -> None:
    component = parse_lines(
        (logs / "com.example.Hello.log").read_text().splitlines(), logs / "com.example.Hello.log"
    )
    assert component[1].time == datetime(2026, 11, 25, 18, 59, tzinfo=UTC)
    assert (component[1].level, component[1].fields) == (
        "INFO",
        {"serviceName": "com.example.Hello", "step": "Run"},
    )
    runtime = parse_lines((logs / "edgewise.log").read_text().splitlines(), logs / "edgewise.log")
    assert runtime[1].level == "ERROR"
    assert runtime[1].fields == {"serviceName": "edgewise", "loggerName": "edgewise.runtime.deployment"}
    assert runtime[1].time == NOW - timedelta(seconds=10)
    # The traceback line belongs to the error above it.
    assert (runtime[2].level, runtime[2].time) == ("ERROR", runtime[1].time)


def test_filters_or_within_one_option_and_across_options(logs: Path) -> None:
    path = logs / "com.example.Hello.log"
    entries = parse_lines(path.read_text().splitlines(), path)

    def kept(*filters: str) -> list[str]:
        groups = parse_filters(filters)
        return [entry.line.split(") ", 1)[1] for entry in entries if matches(entry, groups, [])]

    assert kept("level=WARN") == ["disk almost full", "exited with code 3"]
    assert kept("level=WARNING") == kept("level=WARN")
    assert kept("alpha,full") == ["hello alpha", "disk almost full"]
    assert kept("step=Run", "alpha,full") == ["hello alpha", "disk almost full"]
    assert kept("step=Run", "level=ERROR") == []
    assert kept("serviceName=com.example.Hello", "code [0-9]") == ["exited with code 3"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("thread=main", "--filter: Edgewise logs have no key 'thread'"),
        ("level=LOUD", "--filter: 'LOUD' is not a level"),
        ("oops(", "--filter: 'oops(' is not a valid regular expression"),
    ],
)
def test_bad_filters_are_named(value: str, message: str) -> None:
    with pytest.raises(LogQueryError, match=message.replace("(", r"\(")):
        parse_filters([value])


@pytest.mark.parametrize(
    ("text", "begin", "end"),
    [
        ("-2h15min,-1hr", NOW - timedelta(hours=2, minutes=15), NOW - timedelta(hours=1)),
        ("-1d,", NOW - timedelta(days=1), NOW),
        (",+5min", NOW, NOW + timedelta(minutes=5)),
        (
            "2026-11-25T18:00:00Z,2026-11-25T18:30:00Z",
            datetime(2026, 11, 25, 18, tzinfo=UTC),
            datetime(2026, 11, 25, 18, 30, tzinfo=UTC),
        ),
    ],
)
def test_time_windows_in_the_guide_forms(text: str, begin: datetime, end: datetime) -> None:
    assert parse_time_window(text, NOW) == (begin, end)


def test_dates_and_times_of_day_are_local() -> None:
    begin, end = parse_time_window("2020-07-01,20200702", NOW)
    assert begin == datetime(2020, 7, 1).astimezone()
    assert end == datetime(2020, 7, 2).astimezone()
    begin, end = parse_time_window("12:00,16:00:05", NOW)
    assert (begin.hour, begin.minute, end.hour, end.second) == (12, 0, 16, 5)
    assert begin.date() == NOW.date()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterday,", "cannot read 'yesterday' as a time"),
        ("-1h", "expected BEGIN,END"),
        ("-3weeks,", "'weeks'"),
        ("-1h,-2h", "begins after it ends"),
    ],
)
def test_bad_time_windows_are_named(text: str, message: str) -> None:
    with pytest.raises(LogQueryError, match=f"--time-window: .*{message}"):
        parse_time_window(text, NOW)


def test_log_sources_take_files_and_directories(logs: Path) -> None:
    assert log_sources([], [str(logs)]) == [logs / "com.example.Hello.log", logs / "edgewise.log"]
    # Greengrass's own log is the Edgewise runtime's log.
    assert log_sources([str(logs / "greengrass.log")], []) == [logs / "edgewise.log"]
    with pytest.raises(LogQueryError, match=r"--log-file: .* is not a file"):
        log_sources([str(logs / "missing.log")], [])
    with pytest.raises(LogQueryError, match="give at least one --log-file or --log-dir"):
        log_sources([], [])


def test_logs_get_prints_matching_lines_of_a_file(logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = gg.main(
        ["logs", "get", "--log-file", str(logs / "com.example.Hello.log"), "--filter", "level=WARN"]
    )
    assert code == 0
    assert capsys.readouterr().out.splitlines() == COMPONENT_LOG.splitlines()[2:]


def test_logs_get_merges_a_directory_in_time_order_with_context(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = gg.main(["logs", "get", "--log-dir", str(logs), "--filter", "boom", "--before", "1", "--verbose"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0] == "com.example.Hello.log: 2026-11-25T18:59:40.000Z [ERROR] (lifecycle) exited with code 3"
    )
    assert lines[1].startswith("edgewise.log: ")
    assert lines[1].endswith("boom")
    assert len(lines) == 2


def test_logs_get_time_window_keeps_only_recent_entries(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    window = f"{(NOW - timedelta(minutes=2)).isoformat()},{NOW.isoformat()}"
    assert gg.main(["logs", "get", "-ld", str(logs), "-t", window]) == 0
    out = capsys.readouterr().out
    assert "Runtime started" not in out
    assert "installed" not in out
    assert "hello alpha" in out
    assert "boom" in out
    assert "Traceback" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--syslog"], "--syslog: Edgewise reads its own logs only"),
        (["--follow", "--after", "2"], "--before/--after: not supported together with --follow"),
        (["--filter", "thread=main"], "Edgewise logs have no key 'thread'"),
    ],
)
def test_unsupported_logs_flags_fail_naming_the_flag(
    logs: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gg.main(["logs", "get", "--log-dir", str(logs), *extra]) == 1
    assert message in one_line(capsys.readouterr().err)


# -- ROOT/bin/greengrass-cli -------------------------------------------------------------------------------


def test_script_quotes_the_root_and_runs_the_cli_with_it(tmp_path: Path) -> None:
    root = RootPaths.at(tmp_path / "it's a $HOME `root`")
    root.root.mkdir()
    path = write_greengrass_cli(root)
    assert path == root.root / "bin" / "greengrass-cli"
    assert path.stat().st_mode & 0o777 == 0o755
    assert script_text(root, python=sys.executable) == path.read_text()
    result = subprocess.run(
        [str(path), "component", "list"], capture_output=True, text=True, env={"COLUMNS": "1000"}, timeout=60
    )
    assert result.returncode == 1
    # The root reached the CLI unchanged: no expansion, no word splitting.
    assert f"No runtime has run at {root.root} " in one_line(result.stderr)


def follow(log: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    """``greengrass-cli logs get --follow`` on ``log``, its output in ``out``."""
    command = [
        sys.executable,
        "-m",
        "edgewise.cli.greengrass_cli",
        "logs",
        "get",
        "-lf",
        str(log),
        "--follow",
    ]
    with out.open("w") as sink:
        return subprocess.Popen([*command, *extra], stdout=sink)


def test_logs_get_follow_prints_new_matching_lines(tmp_path: Path) -> None:
    log = tmp_path / "com.example.Hello.log"
    log.write_text("2026-11-25T18:00:00.000Z [INFO] (Run) first match\n")
    out = tmp_path / "out.txt"
    process = follow(log, out, "--filter", "match")
    try:
        wait_until(lambda: "first match" in out.read_text(), what="the existing line")
        with log.open("a") as handle:
            handle.write("2026-11-25T18:00:01.000Z [WARN] (Run) second match\n")
            handle.write("2026-11-25T18:00:02.000Z [INFO] (Run) other\n")
        wait_until(lambda: "second match" in out.read_text(), what="the appended line")
    finally:
        process.terminate()
        process.wait(timeout=30)
    # Both appended lines were read in one pass: the one that does not match was filtered out.
    assert [line.split(") ", 1)[1] for line in out.read_text().splitlines()] == [
        "first match",
        "second match",
    ]


def test_logs_get_follow_stops_once_every_time_window_has_ended(tmp_path: Path) -> None:
    log = tmp_path / "com.example.Hello.log"
    log.write_text(
        "2026-11-25T18:00:00.000Z [INFO] (Run) inside\n2026-11-27T18:00:00.000Z [INFO] (Run) after\n"
    )
    out = tmp_path / "out.txt"
    process = follow(log, out, "--time-window", "2026-11-25T00:00:00Z,2026-11-26T00:00:00Z")
    try:
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    assert out.read_text() == "2026-11-25T18:00:00.000Z [INFO] (Run) inside\n"
