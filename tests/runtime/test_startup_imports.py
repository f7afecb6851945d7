"""What a bare runtime start imports, writes and starts: the parts only a deployment needs (recipe parsing,
PyYAML, node-semver, resolution, planning) and those of features that are not configured (the cloud link and
its TLS settings, the configuration file's parser, log uploads, the shadow sync, the stream manager, the fleet
agent) load on first use; ``effective.yaml`` is not rewritten, nor PyYAML imported, when the tree has not
changed since it was written; a started runtime with components runs one thread."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from edgewise.runtime.config import ConfigStore

DEPLOYMENT_ONLY = (
    "yaml",
    "zipfile",
    "nodesemver",
    "edgewise.recipe._parse",
    "edgewise.recipe._document",
    "edgewise.runtime.deployment.plan",
    "edgewise.runtime.deployment.preparing",
    "edgewise.runtime.deployment.resolving",
    "edgewise.runtime.deployment.resolution",
)


#: OpenSSL's modules, which asyncio, ``secrets``/``hmac`` and ``hashlib`` would load: a runtime loads them only
#: for TLS (``edgewise.runtime.deferred_ssl``) or an artifact's digest.
OPENSSL = ("ssl", "_ssl", "_hashlib", "hmac")

#: What a runtime whose configuration names none of these features must not load.
UNCONFIGURED_FEATURES = (
    "paho",
    "edgewise.runtime.cloudlink._link",
    "edgewise.runtime.cloudlink._settings",
    "edgewise.protocol.device_config",
    "edgewise.runtime.fleet",
    "edgewise.protocol.logs",
    "edgewise.runtime.log_upload",
    "edgewise.runtime.shadow.sync_engine",
    "edgewise.runtime.shadow.sync_cloud",
    "edgewise.runtime.shadow.sync_decision",
    "edgewise.runtime.shadow.sync_state",
    "edgewise.runtime.streams",
    "cbor2",
    "sqlite3",
    "cryptography",
    *OPENSSL,
)

#: A runtime run in-process (``Kernel.run``) on the root given as argv[1], with the components named after
#: it (each runs ``exec sleep 60``), until all of them run; it prints its thread count then, and stops.
STARTED_RUNTIME = """\
import edgewise.runtime.deferred_ssl  # as python -m edgewise.runtime does
import asyncio, sys, threading, time
from pathlib import Path
from edgewise.runtime.config import ConfigStore
from edgewise.runtime.kernel import Kernel
from edgewise.runtime.lifecycle import ComponentState
from edgewise.runtime.paths import RootPaths
from edgewise.runtime.settings import RuntimeSettings

root, names = Path(sys.argv[1]), sys.argv[2:]
component = {"version": "1.0.0", "lifecycle": {"Run": {"Script": "exec sleep 60"}}}
RootPaths.at(root).config_dir.mkdir(parents=True)
with ConfigStore.open(RootPaths.at(root).config_dir) as store:
    store.merge(("services",), {name: component for name in names}, timestamp=1)

def running(kernel):
    supervisor = getattr(kernel, "supervisor", None)
    return supervisor is not None and all(supervisor.state(name) is ComponentState.RUNNING for name in names)

async def main():
    kernel = Kernel(RuntimeSettings(root=root))
    run = asyncio.create_task(kernel.run())
    deadline = time.monotonic() + 30
    while not running(kernel):
        assert not run.done() and time.monotonic() < deadline, "the components did not all start"
        await asyncio.sleep(0.01)
    print("threads", threading.active_count())
    kernel.request_stop()
    await run

asyncio.run(main())
"""


def imported_after(code: str, modules: tuple[str, ...] = DEPLOYMENT_ONLY, *args: str) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported after running ``code`` (with ``args``)."""
    probe = f"import sys\n{code}\nprint(sorted(m for m in {modules!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True)
    return list(eval(result.stdout.splitlines()[-1]))


def test_the_runtime_imports_nothing_only_a_deployment_needs() -> None:
    assert imported_after("import edgewise.runtime.__main__") == []


def test_the_runtime_entry_point_loads_no_openssl() -> None:
    assert imported_after("import edgewise.runtime.__main__, edgewise.runtime.kernel", OPENSSL) == []


def test_a_started_runtime_loads_no_unconfigured_feature_and_runs_one_thread() -> None:
    # A short root: the IPC socket's path must fit in 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="ew-start-")) / "root"
    try:
        probe = f"{STARTED_RUNTIME}\nprint(sorted(m for m in {UNCONFIGURED_FEATURES!r} if m in sys.modules))"
        result = subprocess.run(
            [sys.executable, "-c", probe, str(root), "test.SleepA", "test.SleepB", "test.SleepC"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "EDGEWISE_EVENT_LOOP": "asyncio"},
        )
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
    threads, loaded = result.stdout.splitlines()[-2:]
    # No worker thread for the start-up's file work, no thread per component to reap it (asyncio's own loop).
    assert threads == "threads 1"
    assert eval(loaded) == []


def test_the_lazy_names_still_load_on_first_use() -> None:
    code = (
        "import edgewise.runtime.__main__\n"
        "from edgewise.recipe import load_recipe, parse_recipe\n"
        "from edgewise.versions import Requirement\n"
        "assert Requirement.parse('^1.0.0').allows('1.2.0')"
    )
    assert imported_after(code) == [
        "edgewise.recipe._document",
        "edgewise.recipe._parse",
        "nodesemver",
        "yaml",
    ]


def test_effective_yaml_is_written_once_per_tree_and_read_as_yaml(tmp_path: Path) -> None:
    target = tmp_path / "effective.yaml"
    with ConfigStore.open(tmp_path / "store") as store:
        store.merge(("services", "a"), {"version": "1.0.0", "_token": "private"}, timestamp=1)
        assert store.write_effective(target) is True
        written = target.read_bytes()
        assert store.write_effective(target) is False
        store.set(("services", "a", "_token"), "rotated", timestamp=2)
        assert store.write_effective(target) is False
        assert target.read_bytes() == written
        store.set(("services", "a", "version"), "1.0.1", timestamp=3)
        assert store.write_effective(target) is True
    assert yaml.safe_load(target.read_text()) == {"services": {"a": {"version": "1.0.1"}}}
    assert target.read_bytes() != written


def test_a_restart_with_nothing_changed_neither_rewrites_effective_yaml_nor_imports_pyyaml(
    tmp_path: Path,
) -> None:
    target = tmp_path / "effective.yaml"
    with ConfigStore.open(tmp_path / "store") as store:
        store.merge(("services",), {"a": {"version": "1.0.0"}}, timestamp=1)
        store.write_effective(target)
    written = target.read_bytes()
    code = (
        "from pathlib import Path\n"
        "from edgewise.runtime.config import ConfigStore\n"
        f"with ConfigStore.open(Path({str(tmp_path / 'store')!r})) as store:\n"
        f"    assert store.write_effective(Path({str(target)!r})) is False"
    )
    assert imported_after(code) == []
    assert target.read_bytes() == written
