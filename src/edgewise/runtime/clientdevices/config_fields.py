"""Reading the fields of a client-device built-in's configuration, each error naming the component and the dotted
key (``deviceGroups.definitions.Sensors.policyName``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgewise.runtime.clientdevices.errors import ClientDeviceConfigurationError


def object_at(component: str, value: Any, key: str) -> Mapping[str, Any]:
    """``value`` when it is an object."""
    if not isinstance(value, Mapping):
        where = key or "(the configuration)"
        raise ClientDeviceConfigurationError(
            component, where, f"must be an object, not {type(value).__name__}"
        )
    return value


def object_in(component: str, body: Mapping[str, Any], name: str, key: str) -> Mapping[str, Any]:
    """The object ``body[name]`` (at ``key``); an absent or null one reads as empty."""
    value = body.get(name)
    return {} if value is None else object_at(component, value, key)


def only_keys(component: str, body: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> None:
    """Refuse the first key of ``body`` (at ``key``) that is not ``allowed``."""
    unknown = sorted(str(name) for name in body if name not in allowed)
    if unknown:
        where = f"{key}.{unknown[0]}" if key else unknown[0]
        raise ClientDeviceConfigurationError(
            component, where, f"is not supported (the keys are {', '.join(allowed)})"
        )


def whole_number(component: str, value: Any, key: str, bounds: tuple[int, int]) -> int:
    """``value`` as a whole number within ``bounds``; digits in a string count, as Greengrass's examples have
    them."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    low, high = bounds
    if number is None or not low <= number <= high:
        raise ClientDeviceConfigurationError(
            component, key, f"must be a whole number from {low} to {high}, not {value!r}"
        )
    return number
