"""``ROOT/bin/greengrass-cli``: the command Greengrass tutorials and scripts call, written by the runtime.

Greengrass puts ``greengrass-cli`` in ``ROOT/bin`` when ``aws.greengrass.Cli`` is deployed. In Edgewise the
CLI's IPC service is always there, so the runtime writes the script at every start. The script runs
``python -m edgewise.cli.greengrass_cli`` with the Python that runs the runtime (which has Edgewise
installed) and this root as ``--ggcRootPath``; a ``--ggcRootPath`` given on the command line comes later
and wins. Both values come from the runtime itself, never from a request, and are quoted for the shell.
The runtime does not import the CLI: the script only names its module.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from edgewise.runtime.files import write_if_changed
from edgewise.runtime.paths import RootPaths

#: The module the script runs; kept as a string so that the runtime never imports the CLI.
CLI_MODULE = "edgewise.cli.greengrass_cli"


def script_path(paths: RootPaths) -> Path:
    """Where the script lives: ``ROOT/bin/greengrass-cli``, as in Greengrass."""
    return paths.root / "bin" / "greengrass-cli"


def script_text(paths: RootPaths, *, python: str) -> str:
    """The script's contents for this root and interpreter."""
    command = shlex.join([python, "-m", CLI_MODULE, "--ggcRootPath", str(paths.root)])
    return (
        "#!/bin/sh\n"
        "# greengrass-cli for the Edgewise runtime at this root; refreshed at every runtime start.\n"
        f'exec {command} "$@"\n'
    )


def write_greengrass_cli(paths: RootPaths, *, python: str = sys.executable) -> Path:
    """Write (or refresh) ``ROOT/bin/greengrass-cli``, executable by everyone; a script that is already as
    it should be is not rewritten. Blocks (file system)."""
    path = script_path(paths)
    path.parent.mkdir(exist_ok=True)
    write_if_changed(path, script_text(paths, python=python).encode("utf-8"), mode=0o755)
    # The temporary file's mode is filtered by the umask; the script must stay executable whatever it is.
    path.chmod(0o755)
    return path
