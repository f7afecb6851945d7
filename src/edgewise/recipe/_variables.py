"""Recipe variables such as ``{artifacts:path}`` and ``{configuration:/interval}``, as Greengrass reads them.

The forms are ``{namespace:key}`` for the component itself and ``{dependency:namespace:key}`` for one
of its *direct* dependencies. A placeholder that cannot be resolved (unknown namespace or key, missing
configuration value, a component that is not a direct dependency) is left exactly as written, as
Greengrass does. Substituted text is never scanned again, so a configuration value that contains
``{...}`` comes out verbatim.

Configuration keys are looked up exactly first, then case-insensitively, because the Greengrass
configuration store treats keys case-insensitively.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgewise.recipe._model import Lifecycle, LifecycleStep, Skipif

_PLACEHOLDER = re.compile(r"\{([.\w-]+):(?:([.\w-]+):)?([^:}]*)\}", re.ASCII)
_INDEX = re.compile(r"0|[1-9][0-9]*")
_UNRESOLVED = object()


@dataclass(frozen=True)
class ComponentVariables:
    """What ``{artifacts:...}``, ``{work:path}`` and ``{configuration:...}`` resolve to for one component."""

    artifacts_path: str
    decompressed_path: str
    work_path: str
    configuration: Any = field(default_factory=dict)  #: the component's resolved configuration (JSON value)

    @classmethod
    def from_root(
        cls, root: Path | str, name: str, version: str, configuration: Any = None
    ) -> ComponentVariables:
        """The Greengrass layout under ``root``: ``packages/artifacts/<name>/<version>``,
        ``packages/artifacts-unarchived/<name>/<version>`` and ``work/<name>``."""
        base = Path(root)
        return cls(
            artifacts_path=str(base / "packages" / "artifacts" / name / version),
            decompressed_path=str(base / "packages" / "artifacts-unarchived" / name / version),
            work_path=str(base / "work" / name),
            configuration={} if configuration is None else configuration,
        )


@dataclass(frozen=True, kw_only=True)
class VariableContext:
    """Everything a component's recipe variables can refer to."""

    component: ComponentVariables
    kernel_root_path: str
    dependencies: Mapping[str, ComponentVariables] = field(default_factory=dict)  #: direct ones only
    thing_name: str | None = None  #: None leaves ``{iot:thingName}`` unresolved


def interpolate(text: str, context: VariableContext) -> str:
    """``text`` with every resolvable recipe variable replaced by its value."""

    def substitute(match: re.Match[str]) -> str:
        first, second, key = match.groups()
        if second is None:
            value = _resolve_own(first, key, context)
        else:
            dependency = context.dependencies.get(first)
            value = _UNRESOLVED if dependency is None else _resolve_component(second, key, dependency)
        return match[0] if value is _UNRESOLVED else str(value)

    return _PLACEHOLDER.sub(substitute, text)


def interpolate_lifecycle(lifecycle: Lifecycle, context: VariableContext) -> Lifecycle:
    """``lifecycle`` with variables replaced in every script, ``Skipif`` target and ``Setenv`` value."""
    return dataclasses.replace(
        lifecycle,
        steps={name: _interpolate_step(step, context) for name, step in lifecycle.steps.items()},
        setenv=_interpolate_values(lifecycle.setenv, context),
    )


def interpolate_configuration(value: Any, context: VariableContext) -> Any:
    """A JSON value with variables replaced in every string, at any depth of objects and lists (not in keys).

    This is what the nucleus option ``interpolateComponentConfiguration`` does to a component's configuration.
    """
    if isinstance(value, str):
        return interpolate(value, context)
    if isinstance(value, Mapping):
        return {key: interpolate_configuration(item, context) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [interpolate_configuration(item, context) for item in value]
    return value


def _interpolate_step(step: LifecycleStep, context: VariableContext) -> LifecycleStep:
    skipif = step.skipif
    if skipif is not None:
        skipif = Skipif(check=skipif.check, target=interpolate(skipif.target, context), negate=skipif.negate)
    return dataclasses.replace(
        step,
        script=interpolate(step.script, context),
        setenv=_interpolate_values(step.setenv, context),
        skipif=skipif,
    )


def _interpolate_values(variables: Mapping[str, str], context: VariableContext) -> dict[str, str]:
    return {name: interpolate(value, context) for name, value in variables.items()}


def _resolve_own(namespace: str, key: str, context: VariableContext) -> object:
    if namespace == "kernel" and key == "rootPath":
        return context.kernel_root_path
    if namespace == "iot" and key == "thingName" and context.thing_name is not None:
        return context.thing_name
    return _resolve_component(namespace, key, context.component)


def _resolve_component(namespace: str, key: str, variables: ComponentVariables) -> object:
    if namespace == "artifacts" and key == "path":
        return variables.artifacts_path
    if namespace == "artifacts" and key == "decompressedPath":
        return variables.decompressed_path
    if namespace == "work" and key == "path":
        return variables.work_path
    if namespace == "configuration":
        value = _lookup_pointer(variables.configuration, key)
        return value if value is _UNRESOLVED else _configuration_text(value)
    return _UNRESOLVED


def _lookup_pointer(document: Any, pointer: str) -> Any:
    """RFC 6901: ``""`` is the whole document; ``/a/0/b~1c`` walks keys and list indexes."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        return _UNRESOLVED
    node = document
    for token in pointer[1:].split("/"):
        segment = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping):
            node = _lookup_key(node, segment)
        elif isinstance(node, list | tuple) and _INDEX.fullmatch(segment) and int(segment) < len(node):
            node = node[int(segment)]
        else:
            return _UNRESOLVED
        if node is _UNRESOLVED:
            return _UNRESOLVED
    return node


def _lookup_key(node: Mapping[Any, Any], key: str) -> Any:
    if key in node:
        return node[key]
    folded = key.casefold()
    for candidate, value in node.items():
        if isinstance(candidate, str) and candidate.casefold() == folded:
            return value
    return _UNRESOLVED


def _configuration_text(value: Any) -> object:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return _UNRESOLVED  # not a JSON value: nothing sensible to substitute
