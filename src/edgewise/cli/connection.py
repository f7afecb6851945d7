"""Reaching a running runtime from the CLI: its token file, its socket, and errors as clear messages."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from edgewise.runtime.ipc.client import IpcCallError, IpcClient
from edgewise.runtime.paths import RootPaths

err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error and exit."""
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def call(root: Path, operation: str, request: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Call one IPC operation on the runtime at ``root``; exits with a message on any failure."""
    paths = RootPaths.at(root)
    try:
        info = json.loads(paths.cli_token_file.read_text(encoding="utf-8"))
        token = str(info["cli_auth_token"])
    except FileNotFoundError:
        fail(f"No runtime has run at {paths.root} ({paths.cli_token_file} is missing)")
    except PermissionError:
        fail(f"Cannot read {paths.cli_token_file}: run the CLI as the runtime's user or as root")
    except (ValueError, KeyError) as exc:
        fail(f"{paths.cli_token_file} is not a valid CLI token file ({exc})")
    try:
        with IpcClient(paths.ipc_socket, token) as client:
            return client.call(f"aws.greengrass#{operation}", request or {})
    except IpcCallError as exc:
        fail(f"{operation} failed: {exc.message}")
    except (ConnectionRefusedError, FileNotFoundError):
        fail(f"No runtime is running at {paths.root} (nothing listens on {paths.ipc_socket})")
    except OSError as exc:
        fail(f"Cannot talk to the runtime at {paths.root}: {exc}")
