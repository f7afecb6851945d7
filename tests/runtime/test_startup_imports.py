"""What a bare runtime start imports and writes: the parts only a deployment needs (recipe parsing, PyYAML,
node-semver, resolution, planning) load on first use, and ``effective.yaml`` is not rewritten, nor PyYAML
imported, when the tree has not changed since it was written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from edgewise.runtime.config import ConfigStore

DEPLOYMENT_ONLY = (
    "yaml",
    "nodesemver",
    "edgewise.recipe._parse",
    "edgewise.recipe._document",
    "edgewise.runtime.deployment.plan",
    "edgewise.runtime.deployment.preparing",
    "edgewise.runtime.deployment.resolving",
    "edgewise.runtime.deployment.resolution",
)


def imported_after(code: str) -> list[str]:
    """Which of :data:`DEPLOYMENT_ONLY` a fresh interpreter has imported after running ``code``."""
    probe = f"import sys\n{code}\nprint(sorted(m for m in {DEPLOYMENT_ONLY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return list(eval(result.stdout))


def test_the_runtime_imports_nothing_only_a_deployment_needs() -> None:
    assert imported_after("import edgewise.runtime.__main__") == []


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
