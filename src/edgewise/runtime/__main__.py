"""``python -m edgewise.runtime``: the runtime process itself (``edgewise runtime start`` execs this).

Kept free of the CLI's imports so that the long-running process stays small.
"""

from __future__ import annotations

# First, before anything imports asyncio: it loads without ssl until something needs TLS.
import edgewise.runtime.deferred_ssl  # noqa: F401

# isort: split
import argparse
import logging
import logging.handlers
import os
import shlex
import sys
from pathlib import Path

from edgewise.names import THING_NAME
from edgewise.runtime import eventloop
from edgewise.runtime.cloudlink import CloudLinkError, ConfigFileError
from edgewise.runtime.config_file import RuntimeFileSettings, load_config_file
from edgewise.runtime.kernel import Kernel, RootBusyError, restart_in_place
from edgewise.runtime.lifecycle.bootstrap import BootstrapAction
from edgewise.runtime.settings import RuntimeSettings


def _configure_logging(settings: RuntimeSettings) -> None:
    settings.paths.logs_dir.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    to_file = logging.handlers.RotatingFileHandler(
        settings.paths.runtime_log, maxBytes=5 * 1024 * 1024, backupCount=3, encoding="utf-8"
    )
    to_file.setFormatter(formatter)
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setFormatter(formatter)
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    root.addHandler(to_file)
    root.addHandler(to_stderr)


def parse_args(argv: list[str]) -> RuntimeSettings:
    parser = argparse.ArgumentParser(prog="edgewise runtime start", description="Run the Edgewise runtime.")
    parser.add_argument("--root", required=True, type=Path, help="runtime root directory")
    parser.add_argument("--thing-name", default="edgewise-device", help="this device's thing name")
    parser.add_argument("--run-as", default=None, help="user[:group] for components when running as root")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--error-threshold", type=int, default=3, help="errors in the window before BROKEN")
    parser.add_argument(
        "--error-window", type=float, default=3600.0, help="seconds; errors older are forgotten"
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument(
        "--cgroup-root",
        type=Path,
        default=RuntimeSettings.cgroup_root,
        help="cgroup v2 directory under which components with systemResourceLimits get their cgroup",
    )
    parser.add_argument(
        "--reboot-command",
        default=" ".join(RuntimeSettings.reboot_command),
        help="command (split like a shell, never run by one) that reboots the device for a Bootstrap step",
    )
    parser.add_argument(
        "--ipc-handshake-timeout",
        type=float,
        default=RuntimeSettings.ipc_handshake_timeout,
        help="seconds an IPC connection has to authenticate before it is closed",
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="runtime configuration file (YAML; docs/configuration.md)"
    )
    args = parser.parse_args(argv)
    file = RuntimeFileSettings()
    if args.config is not None:
        try:
            file = load_config_file(args.config)
        except ConfigFileError as exc:
            parser.error(str(exc))
    thing_name = file.thing_name or args.thing_name
    if not THING_NAME.fullmatch(thing_name):
        option = "thingName" if file.thing_name else "--thing-name"
        parser.error(
            f"{option}: {thing_name!r} is not a thing name (1-128 of letters, digits, ':', '_', '-')"
        )
    if args.error_threshold < 1:
        parser.error("--error-threshold: must be at least 1")
    if args.error_window <= 0:
        parser.error("--error-window: must be a positive number of seconds")
    if args.ipc_handshake_timeout <= 0:
        parser.error("--ipc-handshake-timeout: must be a positive number of seconds")
    reboot_command = tuple(shlex.split(args.reboot_command))
    if not reboot_command:
        parser.error("--reboot-command: must name a command")
    return RuntimeSettings(
        root=args.root,
        thing_name=thing_name,
        region=args.region,
        run_as=args.run_as,
        error_threshold=args.error_threshold,
        error_window=args.error_window,
        log_level=args.log_level,
        cloud=file.cloud,
        ipc_handshake_timeout=args.ipc_handshake_timeout,
        cgroup_root=args.cgroup_root,
        reboot_command=reboot_command,
        artifacts=file.artifacts,
    )


def main(argv: list[str] | None = None) -> None:
    settings = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        loop = eventloop.choose(os.environ)
    except ValueError as exc:
        sys.exit(f"edgewise runtime: {exc}")
    _configure_logging(settings)
    kernel = Kernel(settings)
    try:
        eventloop.run(kernel.run(), loop=loop)
    except (RootBusyError, CloudLinkError) as exc:
        logging.getLogger("edgewise.runtime").error("%s", exc)
        sys.exit(2)
    if kernel.bootstrap_action is BootstrapAction.RESTART:
        restart_in_place()


if __name__ == "__main__":
    main()
