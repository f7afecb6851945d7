"""The device's platform attributes and the choice of a recipe manifest for them (the first that matches).

A recipe with no manifests at all is treated as having one implicit, empty manifest that matches
every device (so its global lifecycle, if any, runs everywhere). Greengrass Classic refuses such
recipes, but its documentation allows an empty ``Manifests`` list, and components that only carry
dependencies or configuration are useful; Edgewise takes the lenient reading.
"""

from __future__ import annotations

import platform as _host
import re
import sys
from collections.abc import Mapping

from edgewise.recipe._model import Manifest, Recipe

OS_KEY = "os"
ARCHITECTURE_KEY = "architecture"
ARCHITECTURE_DETAIL_KEY = "architecture.detail"

#: Matches every platform; :func:`select_manifest` returns it for recipes without manifests.
IMPLICIT_MANIFEST = Manifest()

_ARM_DETAILS = frozenset({"armv6l", "armv7l", "armv8l", "armv6b", "armv7b", "armv8b"})
_X86 = frozenset({"i386", "i486", "i586", "i686", "x86"})
_SIMPLE_LABEL = re.compile(r"[A-Za-z0-9]")


def detect_platform(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The attributes manifests are matched against: ``os``, ``architecture`` and, on 32-bit ARM
    kernels, ``architecture.detail`` (the ``uname -m`` value), then ``overrides`` on top.

    ``os`` is ``linux``, ``darwin`` or ``windows``; ``architecture`` is ``amd64``, ``x86``, ``arm`` or
    ``aarch64``. Other systems report ``sys.platform`` and other machines their ``uname -m`` name in
    lower case, where Greengrass would say ``unknown`` (which no recipe can usefully target either).
    """
    machine = _host.machine().lower()
    attributes = {OS_KEY: _detect_os(), ARCHITECTURE_KEY: _architecture(machine)}
    if machine in _ARM_DETAILS:
        attributes[ARCHITECTURE_DETAIL_KEY] = machine
    if overrides:
        attributes.update(overrides)
    return attributes


def _detect_os() -> str:
    if sys.platform.startswith(("win32", "cygwin")):
        return "windows"
    if sys.platform == "darwin":
        return "darwin"
    if sys.platform.startswith("linux"):
        return "linux"
    return sys.platform


def _architecture(machine: str) -> str:
    if machine in ("x86_64", "amd64"):
        return "amd64"
    if machine in _X86:
        return "x86"
    if machine in ("aarch64", "arm64"):
        return "aarch64"
    if machine.startswith("arm"):
        return "arm"
    return machine or "unknown"


def select_manifest(recipe: Recipe, platform: Mapping[str, str]) -> Manifest | None:
    """The first manifest of ``recipe`` whose ``Platform`` ``platform`` satisfies, or None if none does.

    A recipe without manifests gets :data:`IMPLICIT_MANIFEST` (see the module docstring).
    """
    if not recipe.manifests:
        return IMPLICIT_MANIFEST
    for manifest in recipe.manifests:
        if platform_matches(manifest.platform, platform):
            return manifest
    return None


def platform_matches(wanted: Mapping[str, str], platform: Mapping[str, str]) -> bool:
    """True when every attribute in ``wanted`` (a manifest's ``Platform``) is satisfied by ``platform``.

    ``*`` accepts anything, even a missing attribute; ``/regex/`` must match the whole device value;
    for ``os`` and ``architecture`` the legacy ``all``/``any`` are wildcards too; any other value must
    start with a letter or digit and equal the device value exactly.
    """
    return all(_satisfied(key, value, platform.get(key)) for key, value in wanted.items())


def _satisfied(key: str, wanted: str, actual: str | None) -> bool:
    if wanted == "*":
        return True
    if not actual:
        return False
    if is_platform_regex(wanted):
        try:
            return re.fullmatch(wanted[1:-1], actual) is not None
        except re.error:
            return False
    if key in (OS_KEY, ARCHITECTURE_KEY) and wanted in ("all", "any"):
        return True
    return _SIMPLE_LABEL.match(wanted) is not None and wanted == actual


def is_platform_regex(value: str) -> bool:
    """True for a ``/regex/`` platform value."""
    return len(value) >= 2 and value.startswith("/") and value.endswith("/")


def platform_value_problem(value: str) -> str | None:
    """Why ``value`` cannot be a ``Platform`` value, or None if it can."""
    if value == "*":
        return None
    if is_platform_regex(value):
        try:
            re.compile(value[1:-1])
        except re.error as exc:
            return f"regular expression {value!r} does not compile: {exc}"
        return None
    if _SIMPLE_LABEL.match(value) is None:
        return f"expected '*', a /regex/ or a value starting with a letter or digit, got {value!r}"
    return None
