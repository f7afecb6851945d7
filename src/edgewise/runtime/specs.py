"""From the stored ``services`` tree to the specs the supervisor runs.

The tree keeps each component's selected lifecycle as written in its recipe; building a spec interpolates the
recipe variables against the component's current configuration and paths. A configuration
change that alters an interpolated lifecycle therefore changes the spec, and the supervisor restarts it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from edgewise.recipe import (
    ComponentType,
    ComponentVariables,
    DependencyType,
    Lifecycle,
    LifecycleStep,
    Skipif,
    VariableContext,
    interpolate_lifecycle,
)
from edgewise.runtime.lifecycle.cgroups import ResourceLimits
from edgewise.runtime.lifecycle.spec import ComponentSpec
from edgewise.runtime.paths import RootPaths

logger = logging.getLogger(__name__)

Tree = dict[str, Any]
NUCLEUS = "aws.greengrass.Nucleus"


def lifecycle_to_tree(lifecycle: Lifecycle) -> Tree:
    """The lifecycle as JSON, in recipe spelling (``Run: {Script: ...}``)."""
    tree: Tree = {}
    if lifecycle.setenv:
        tree["Setenv"] = dict(lifecycle.setenv)
    if lifecycle.error_reset_time is not None:
        tree["errorResetTime"] = lifecycle.error_reset_time
    for name, step in lifecycle.steps.items():
        node: Tree = {"Script": step.script, "RequiresPrivilege": step.requires_privilege}
        if step.timeout is not None:
            node["Timeout"] = step.timeout
        if step.setenv:
            node["Setenv"] = dict(step.setenv)
        if step.skipif is not None:
            node["Skipif"] = f"{'!' if step.skipif.negate else ''}{step.skipif.check} {step.skipif.target}"
        tree[name] = node
    return tree


def lifecycle_from_tree(tree: Mapping[str, Any]) -> Lifecycle:
    """Read back what :func:`lifecycle_to_tree` wrote."""
    steps: dict[str, LifecycleStep] = {}
    for name, node in tree.items():
        if name in ("Setenv", "errorResetTime") or not isinstance(node, Mapping):
            continue
        skipif = None
        if node.get("Skipif"):
            text = str(node["Skipif"])
            negate = text.startswith("!")
            check, _, target = text.lstrip("!").partition(" ")
            skipif = Skipif(check=check, target=target, negate=negate)
        steps[name] = LifecycleStep(
            script=str(node.get("Script", "")),
            timeout=float(node["Timeout"]) if node.get("Timeout") is not None else None,
            requires_privilege=bool(node.get("RequiresPrivilege", False)),
            setenv=dict(node.get("Setenv") or {}),
            skipif=skipif,
        )
    reset_time = tree.get("errorResetTime")
    return Lifecycle(
        steps=steps,
        setenv=dict(tree.get("Setenv") or {}),
        error_reset_time=float(reset_time) if reset_time is not None else None,
    )


def _variables(name: str, node: Mapping[str, Any], paths: RootPaths) -> ComponentVariables:
    version = str(node.get("version", ""))
    return ComponentVariables(
        artifacts_path=str(paths.component_artifacts(name, version)),
        decompressed_path=str(paths.component_unarchived(name, version)),
        work_path=str(paths.component_work(name)),
        configuration=node.get("configuration") or {},
    )


def configuration_context(paths: RootPaths, *, thing_name: str) -> Callable[[str, str, Any], VariableContext]:
    """The recipe variables a component's configuration may use (``interpolateComponentConfiguration``).

    Only the component's own variables: Greengrass resolves no ``{other:namespace:key}`` inside
    configuration, since the configuration of the other components is not settled yet at that point.
    """

    def context(name: str, version: str, configuration: Any) -> VariableContext:
        node = {"version": version, "configuration": configuration}
        return VariableContext(
            component=_variables(name, node, paths), kernel_root_path=str(paths.root), thing_name=thing_name
        )

    return context


def build_specs(
    services: Mapping[str, Any], paths: RootPaths, *, thing_name: str
) -> dict[str, ComponentSpec]:
    """The spec of every component in a ``services`` tree, lifecycles interpolated."""
    specs: dict[str, ComponentSpec] = {}
    nucleus = services.get(NUCLEUS)
    nucleus_config = (nucleus.get("configuration") if isinstance(nucleus, Mapping) else None) or {}
    default_limits = (nucleus_config.get("runWithDefault") or {}).get("systemResourceLimits")
    for name, node in services.items():
        if not isinstance(node, Mapping):
            continue
        dependencies = {
            dep: DependencyType(str(kind).upper()) for dep, kind in (node.get("dependencies") or {}).items()
        }
        builtin = node.get("componentType") == ComponentType.NUCLEUS.value
        lifecycle = Lifecycle()
        if not builtin:
            context = VariableContext(
                component=_variables(name, node, paths),
                kernel_root_path=str(paths.root),
                dependencies={
                    dep: _variables(dep, services[dep], paths)
                    for dep in dependencies
                    if isinstance(services.get(dep), Mapping)
                },
                thing_name=thing_name,
            )
            lifecycle = interpolate_lifecycle(lifecycle_from_tree(node.get("lifecycle") or {}), context)
        run_with = node.get("runWith") or {}
        specs[name] = ComponentSpec(
            name=name,
            version=str(node.get("version", "")),
            lifecycle=lifecycle,
            dependencies=dependencies,
            posix_user=run_with.get("posixUser"),
            builtin=builtin,
            resource_limits=None
            if builtin
            else _limits(name, run_with.get("systemResourceLimits", default_limits)),
        )
    return specs


def _limits(name: str, value: Any) -> ResourceLimits | None:
    """The component's resource limits; invalid ones are reported and left out, so the component still runs."""
    try:
        return ResourceLimits.from_json(value)
    except ValueError as exc:
        logger.warning("component-limits-invalid: Component %r runs without resource limits: %s", name, exc)
        return None
