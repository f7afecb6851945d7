"""``greengrass-cli``: the AWS IoT Greengrass CLI's commands and camelCase flags, on an Edgewise runtime.

Scripts and tutorials written for Greengrass run unchanged::

    greengrass-cli --ggcRootPath ROOT component list
    greengrass-cli deployment create --recipeDir ~/recipes --artifactDir ~/artifacts --merge "com.example.Hello=1.0.0"
    greengrass-cli deployment status -i ID

Each command maps onto the operation ``edgewise runtime ...`` uses (the same IPC calls and option parsing)
and prints what the Greengrass CLI prints where scripts parse it: ``Local deployment submitted! Deployment Id:
ID``, ``ID: STATUS``, ``Component Name: ...`` blocks. The root is ``--ggcRootPath`` (before or after the
command), else ``GGC_ROOT_PATH`` (as Greengrass), else ``EDGEWISE_ROOT``; ``ROOT/bin/greengrass-cli``, which
the runtime writes, passes its own root. A flag Greengrass has and Edgewise cannot honour fails naming it
(``--syslog``, ``--runWith NAME:windowsUser=...``), and so does ``get-debug-password``: Edgewise has no local
debug console. argparse is used rather than Typer because the flags are camelCase and several single-dash
ones are longer than a letter (``-fp``, ``-lf``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from edgewise.cli.connection import call, err_console, fail
from edgewise.cli.greengrass_logs import (
    LogEntry,
    LogQueryError,
    Term,
    log_sources,
    matches,
    parse_filters,
    parse_lines,
    parse_time_window,
    read_entries,
    select,
)
from edgewise.cli.runtime import _directory, _parse_merge, _parse_run_with, _parse_update_config

#: Where the root comes from when ``--ggcRootPath`` is not given, first found wins.
ROOT_VARIABLES = ("GGC_ROOT_PATH", "EDGEWISE_ROOT")
#: Greengrass splits ``--names`` on commas and ampersands, ignoring spaces around them.
_NAME_SEPARATORS = re.compile(r" *[&,]+ *")
_FOLLOW_INTERVAL = 0.25
#: Options whose value may start with a dash (a time offset such as -1h).
_DASH_VALUE_OPTIONS = frozenset({"-t", "--time-window"})
Handler = Callable[[argparse.Namespace], None]


# -- the command line ------------------------------------------------------------------------------------


def _leaf(commands: Any, name: str, handler: Handler, description: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=description, description=description, allow_abbrev=False
    )
    # Greengrass takes --ggcRootPath before the command; accepting it after too costs nothing.
    parser.add_argument(
        "--ggcRootPath", dest="ggc_root_path", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    parser.set_defaults(handler=handler)
    return parser


def _group(commands: Any, name: str, description: str) -> Any:
    parser = commands.add_parser(name, help=description, description=description, allow_abbrev=False)
    return parser.add_subparsers(title="commands", metavar="COMMAND", required=True)


def build_parser() -> argparse.ArgumentParser:
    """The ``greengrass-cli`` command line: every command and flag of the Greengrass CLI Edgewise accepts."""
    parser = argparse.ArgumentParser(
        prog="greengrass-cli",
        description="The AWS IoT Greengrass CLI's commands, on an Edgewise runtime.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--ggcRootPath",
        dest="ggc_root_path",
        default=None,
        help="the runtime's root directory (default: $GGC_ROOT_PATH, then $EDGEWISE_ROOT)",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    component = _group(commands, "component", "Components of the running runtime.")
    _leaf(component, "list", component_list, "Show every component's version, state and configuration.")
    details = _leaf(component, "details", component_details, "Show one component.")
    details.add_argument("-n", "--name", required=True, help="the component's name")
    for name, handler, verb in (("restart", component_restart, "Restart"), ("stop", component_stop, "Stop")):
        leaf = _leaf(component, name, handler, f"{verb} components.")
        leaf.add_argument("-n", "--names", required=True, help="component names, separated by commas")

    deployment = _group(commands, "deployment", "Local deployments.")
    create = _leaf(deployment, "create", deployment_create, "Create a local deployment.")
    create.add_argument("-r", "--recipeDir", dest="recipe_dir", help="directory of component recipes")
    create.add_argument("-a", "--artifactDir", dest="artifact_dir", help="artifacts as DIR/<name>/<version>/")
    create.add_argument("-m", "--merge", action="append", default=[], help="NAME=VERSION to add or update")
    create.add_argument("--remove", action="append", default=[], help="NAME[,NAME...] to remove")
    create.add_argument("-c", "--update-config", dest="update_config", help="JSON, or a JSON file's path")
    create.add_argument("-g", "--groupId", dest="group_id", help="the thing group the deployment is for")
    create.add_argument(
        "--runWith", dest="run_with", action="append", default=[], help="NAME:posixUser=USER[:GROUP]"
    )
    create.add_argument(
        "--systemLimits",
        dest="system_limits",
        action="append",
        default=[],
        help='{"NAME": {"cpus": N, "memory": KB}} as JSON, or a JSON file\'s path',
    )
    create.add_argument(
        "-fp",
        "--failure-handling-policy",
        dest="failure_policy",
        type=str.upper,
        choices=("ROLLBACK", "DO_NOTHING"),
        default="ROLLBACK",
        help="ROLLBACK (default) or DO_NOTHING",
    )
    for name, handler, description in (
        ("status", deployment_status, "Show one deployment's status."),
        ("cancel", deployment_cancel, "Cancel a deployment that has not started activating."),
    ):
        leaf = _leaf(deployment, name, handler, description)
        leaf.add_argument("-i", "--deploymentId", dest="deployment_id", required=True, help="the deployment")
    _leaf(deployment, "list", deployment_list, "Show every local deployment's status.")

    logs = _group(commands, "logs", "Read the runtime's and the components' logs.")
    get = _leaf(logs, "get", logs_get, "Print log lines, filtered.")
    get.add_argument("-lf", "--log-file", dest="log_files", action="append", default=[], help="a log file")
    get.add_argument("-ld", "--log-dir", dest="log_dirs", action="append", default=[], help="a log directory")
    get.add_argument(
        "-f", "--filter", dest="filters", action="append", default=[], help="keyword, regex or key=value"
    )
    get.add_argument("-t", "--time-window", dest="windows", action="append", default=[], help="BEGIN,END")
    get.add_argument("-b", "--before", type=int, default=0, help="lines of context before a match")
    get.add_argument("-a", "--after", type=int, default=0, help="lines of context after a match")
    get.add_argument("-fol", "--follow", action="store_true", help="keep printing new lines")
    get.add_argument("-v", "--verbose", action="store_true", help="prefix each line with its file's name")
    get.add_argument("-nc", "--no-color", action="store_true", help="accepted; Edgewise never colours logs")
    get.add_argument("-m", "--max-log-queue-size", type=int, default=100, help="accepted; no effect")
    get.add_argument("-s", "--syslog", action="store_true", help="not supported by Edgewise")

    _leaf(commands, "get-debug-password", get_debug_password, "Not supported: Edgewise has no debug console.")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse a command line; exits 2 naming an unknown flag or a missing or bad value."""
    # argparse reads "-2h15min,-1hr" after --time-window as a flag; the guide writes offsets that way.
    joined: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        value = next(tokens, None) if token in _DASH_VALUE_OPTIONS else None
        joined.append(token if value is None else f"{token}={value}")
    return build_parser().parse_args(joined)


def _root(args: argparse.Namespace) -> Path:
    if args.ggc_root_path:
        return Path(args.ggc_root_path).expanduser()
    for variable in ROOT_VARIABLES:
        if value := os.environ.get(variable):
            return Path(value).expanduser()
    fail("No runtime root: pass --ggcRootPath ROOT, or set GGC_ROOT_PATH (or EDGEWISE_ROOT)")


def split_names(text: str) -> list[str]:
    """``--names`` as Greengrass splits it: on commas and ampersands."""
    names = [name for name in _NAME_SEPARATORS.split(text.strip()) if name]
    if not names:
        fail(f"--names: expected NAME[,NAME...], got {text!r}")
    return names


# -- component ---------------------------------------------------------------------------------------------


def component_block(component: dict[str, Any]) -> str:
    """One component as the Greengrass CLI prints it."""
    configuration = json.dumps(component.get("configuration"), separators=(",", ":"))
    return (
        f"Component Name: {component['componentName']}\n"
        f"Version: {component['version']}\n"
        f"State: {component['state']}\n"
        f"Configuration: {configuration}"
    )


def component_list(args: argparse.Namespace) -> None:
    """``component list``."""
    components = call(_root(args), "ListComponents")["components"]
    print("Components currently running in Greengrass:")
    for component in components:
        print(component_block(component))


def component_details(args: argparse.Namespace) -> None:
    """``component details --name NAME``."""
    print(
        component_block(
            call(_root(args), "GetComponentDetails", {"componentName": args.name})["componentDetails"]
        )
    )


def component_restart(args: argparse.Namespace) -> None:
    """``component restart --names A,B``: prints nothing on success, as Greengrass."""
    root = _root(args)
    for name in split_names(args.names):
        call(root, "RestartComponent", {"componentName": name})


def component_stop(args: argparse.Namespace) -> None:
    """``component stop --names A,B``: prints nothing on success, as Greengrass."""
    root = _root(args)
    for name in split_names(args.names):
        call(root, "StopComponent", {"componentName": name})


# -- deployment --------------------------------------------------------------------------------------------


def _update_config(value: str | None) -> dict[str, Any]:
    """``--update-config``: a JSON file's path when such a file exists (as Greengrass), else JSON text."""
    if value is None:
        return {}
    path = Path(value).expanduser()
    return _parse_update_config(f"@{path}" if path.is_file() else value)


def _system_limits(values: Sequence[str]) -> dict[str, Any]:
    """``--systemLimits``: ``{"NAME": {"cpus": ..., "memory": ...}}`` as JSON, or a JSON file's path.

    The runtime validates the limits themselves and names what is wrong.
    """
    limits: dict[str, Any] = {}
    for value in values:
        path = Path(value).expanduser()
        try:
            text = path.read_text(encoding="utf-8") if path.is_file() else value
        except OSError as exc:
            fail(f"--systemLimits: cannot read {path}: {exc.strerror}")
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            fail(f"--systemLimits: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")
        if not isinstance(parsed, dict) or not all(isinstance(item, dict) for item in parsed.values()):
            fail('--systemLimits: expected an object like {"NAME": {"cpus": 0.5, "memory": 102400}}')
        limits.update(parsed)
    return limits


def _run_with(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """``componentToRunWithInfo`` from ``--runWith`` and ``--systemLimits``."""
    run_with: dict[str, dict[str, Any]] = {
        name: dict(info) for name, info in _parse_run_with(args.run_with, "--runWith").items()
    }
    for name, limits in _system_limits(args.system_limits).items():
        run_with.setdefault(name, {})["systemResourceLimits"] = limits
    return run_with


def deployment_request(args: argparse.Namespace) -> dict[str, Any]:
    """The ``CreateLocalDeployment`` request for ``deployment create``; exits naming a flag it cannot use."""
    request: dict[str, Any] = {
        "rootComponentVersionsToAdd": _parse_merge(args.merge),
        "rootComponentsToRemove": [name for value in args.remove for name in split_names(value)],
        "componentToConfiguration": _update_config(args.update_config),
        "componentToRunWithInfo": _run_with(args),
        "failureHandlingPolicy": args.failure_policy,
    }
    if args.group_id:
        request["groupName"] = args.group_id
    for value, option, key in (
        (args.recipe_dir, "--recipeDir", "recipeDirectoryPath"),
        (args.artifact_dir, "--artifactDir", "artifactsDirectoryPath"),
    ):
        if (directory := _directory(None if value is None else Path(value).expanduser(), option)) is not None:
            request[key] = directory
    return request


def deployment_create(args: argparse.Namespace) -> None:
    """``deployment create ...``."""
    request = deployment_request(args)
    deployment_id = call(_root(args), "CreateLocalDeployment", request)["deploymentId"]
    print(f"Local deployment submitted! Deployment Id: {deployment_id}")


def deployment_status(args: argparse.Namespace) -> None:
    """``deployment status -i ID``: ``ID: STATUS``, and a failed deployment's reason on stderr."""
    deployment = call(_root(args), "GetLocalDeploymentStatus", {"deploymentId": args.deployment_id})[
        "deployment"
    ]
    print(f"{deployment['deploymentId']}: {deployment['status']}")
    cause = (deployment.get("deploymentStatusDetails") or {}).get("deploymentFailureCause")
    if cause:
        err_console.print(f"reason: {cause}", highlight=False, markup=False)


def deployment_list(args: argparse.Namespace) -> None:
    """``deployment list``: ``ID: STATUS`` per deployment, oldest first."""
    for deployment in call(_root(args), "ListLocalDeployments")["localDeployments"]:
        print(f"{deployment['deploymentId']}: {deployment['status']}")


def deployment_cancel(args: argparse.Namespace) -> None:
    """``deployment cancel -i ID``."""
    print(call(_root(args), "CancelLocalDeployment", {"deploymentId": args.deployment_id})["message"])


# -- logs --------------------------------------------------------------------------------------------------


def _print_entry(entry: LogEntry, verbose: bool) -> None:
    sys.stdout.write(f"{entry.source.name}: {entry.line}\n" if verbose else f"{entry.line}\n")


def logs_get(args: argparse.Namespace) -> None:
    """``logs get --log-file F --log-dir D --filter ... --time-window ...``."""
    if args.syslog:
        fail("--syslog: Edgewise reads its own logs only (ROOT/logs), not the system log")
    if args.follow and (args.before or args.after):
        fail("--before/--after: not supported together with --follow in Edgewise")
    if args.before < 0 or args.after < 0:
        fail("--before/--after: expected a number of lines, 0 or more")
    now = datetime.now().astimezone()
    try:
        filters = parse_filters(args.filters)
        windows = [parse_time_window(text, now) for text in args.windows]
        sources = log_sources(args.log_files, args.log_dirs)
    except LogQueryError as exc:
        fail(str(exc))
    entries, positions = read_entries(sources, complete_only=args.follow)
    keep = [matches(entry, filters, windows) for entry in entries]
    for entry in select(entries, keep, before=args.before, after=args.after):
        _print_entry(entry, args.verbose)
    sys.stdout.flush()
    if args.follow:
        _follow(positions, filters, windows, verbose=args.verbose)


def _follow(
    positions: dict[Path, int],
    filters: Sequence[Sequence[Term]],
    windows: Sequence[tuple[datetime, datetime]],
    *,
    verbose: bool,
) -> None:
    """Print lines written after ``positions`` (bytes already read per file) as they come, until Ctrl-C or
    until every time window has ended."""
    last: dict[Path, LogEntry | None] = dict.fromkeys(positions)
    while not windows or datetime.now().astimezone() <= max(end for _, end in windows):
        for path in positions:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            # A smaller file was rotated: what is there now is new.
            start = positions[path] if size >= positions[path] else 0
            with path.open("rb") as handle:
                handle.seek(start)
                data = handle.read()
            complete = data[: data.rfind(b"\n") + 1]
            positions[path] = start + len(complete)
            lines = complete.decode("utf-8", errors="replace").splitlines()
            for entry in parse_lines(lines, path, previous=last[path]):
                last[path] = entry
                if matches(entry, filters, windows):
                    _print_entry(entry, verbose)
            sys.stdout.flush()
        time.sleep(_FOLLOW_INTERVAL)


# -- get-debug-password ------------------------------------------------------------------------------------


def get_debug_password(args: argparse.Namespace) -> None:
    """``get-debug-password``: refused, loudly; there is no local debug console to log in to."""
    fail(
        "get-debug-password: Edgewise has no local debug console (aws.greengrass.LocalDebugConsole), "
        "so there is no debug password; use `greengrass-cli component list` or `edgewise runtime` instead"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``greengrass-cli`` command; the exit status is 0, 1 when it fails, 2 for a bad command line."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    handler: Handler = args.handler
    try:
        handler(args)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
