"""The configuration of ``aws.greengrass.ShadowManager`` in Greengrass's keys, checked and typed.

Greengrass's shape (docs/runtime.md, "Local shadows and cloud sync")::

    synchronize:                      # absent: shadows stay local, nothing is synced
      coreThing: {classic: true, namedShadows: [a, b]}      # the device's own thing
      shadowDocuments: [{thingName: T, classic: true, namedShadows: [...]}]
      shadowDocumentsMap: {T: {classic: true, namedShadows: [...]}}   # merged with the list
      direction: betweenDeviceAndCloud | deviceToCloud | cloudToDevice
    strategy: {type: realTime | periodic, delay: 300}
    rateLimits: {maxOutboundSyncUpdatesPerSecond: 100, maxTotalLocalRequestsRate: 200,
                 maxLocalRequestsPerSecondPerThing: 20}
    shadowDocumentSizeLimitBytes: 8192   # at most 30720

Numbers and booleans may be strings (``"true"``, ``"300"``), as Greengrass's examples write them. A key this
module does not know, or a value it cannot use, raises :class:`ShadowConfigurationError` naming the dotted key,
so a deployment carrying it fails before it is applied.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from edgewise.errors import EdgewiseError
from edgewise.protocol.shadow.document import validate_shadow_name, validate_thing_name
from edgewise.protocol.shadow.errors import ShadowError

SHADOW_MANAGER: Final = "aws.greengrass.ShadowManager"
SYNCHRONIZE: Final = "synchronize"
STRATEGY: Final = "strategy"
RATE_LIMITS: Final = "rateLimits"
SIZE_LIMIT: Final = "shadowDocumentSizeLimitBytes"
#: Greengrass's defaults and bounds.
DEFAULT_SIZE_LIMIT: Final = 8192
MAX_SIZE_LIMIT: Final = 30720
DEFAULT_PERIODIC_DELAY: Final = 300.0
_TOP_KEYS: Final = (SYNCHRONIZE, STRATEGY, RATE_LIMITS, SIZE_LIMIT)
_SYNC_KEYS: Final = ("coreThing", "shadowDocuments", "shadowDocumentsMap", "direction")
_THING_KEYS: Final = ("classic", "namedShadows")
_RATE_KEYS: Final = {
    "maxOutboundSyncUpdatesPerSecond": 100,
    "maxTotalLocalRequestsRate": 200,
    "maxLocalRequestsPerSecondPerThing": 20,
}


class ShadowConfigurationError(EdgewiseError):
    """A value of the shadow manager's configuration that cannot be used; ``key`` names it (a dotted path)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{SHADOW_MANAGER} configuration {key} {problem}")
        self.key = key
        self.problem = problem


class SyncDirection(enum.Enum):
    """Which way changes flow between the local shadows and the cloud's."""

    #: Both ways; a conflict is merged (``desired`` from the cloud, ``reported`` from the device).
    BETWEEN_DEVICE_AND_CLOUD = "betweenDeviceAndCloud"
    #: Local changes reach the cloud, overwriting it; cloud changes are ignored.
    DEVICE_TO_CLOUD = "deviceToCloud"
    #: Cloud changes reach the device, overwriting it; local changes stay local.
    CLOUD_TO_DEVICE = "cloudToDevice"

    @property
    def pushes(self) -> bool:
        """Whether local changes are sent to the cloud."""
        return self is not SyncDirection.CLOUD_TO_DEVICE

    @property
    def pulls(self) -> bool:
        """Whether cloud changes are applied locally."""
        return self is not SyncDirection.DEVICE_TO_CLOUD


class ShadowKey(NamedTuple):
    """One shadow: its thing and its name (``""`` for the classic shadow)."""

    thing: str
    shadow: str


@dataclass(frozen=True)
class ThingShadows:
    """The shadows of one thing that are synced."""

    classic: bool = True
    named: tuple[str, ...] = ()

    def union(self, other: ThingShadows) -> ThingShadows:
        return ThingShadows(self.classic or other.classic, tuple(sorted({*self.named, *other.named})))


@dataclass(frozen=True)
class SyncTargets:
    """``synchronize``: which shadows are synced, and which way."""

    core: ThingShadows | None = None  #: the device's own thing (``coreThing``); None: none of its shadows
    things: tuple[tuple[str, ThingShadows], ...] = ()  #: other things, by name
    direction: SyncDirection = SyncDirection.BETWEEN_DEVICE_AND_CLOUD

    def shadows(self, core_thing: str) -> tuple[ShadowKey, ...]:
        """Every synced shadow, sorted, with ``coreThing`` standing for ``core_thing``."""
        merged: dict[str, ThingShadows] = dict(self.things)
        if self.core is not None:
            known = merged.get(core_thing)
            merged[core_thing] = self.core if known is None else known.union(self.core)
        keys = set()
        for thing, chosen in merged.items():
            if chosen.classic:
                keys.add(ShadowKey(thing, ""))
            keys.update(ShadowKey(thing, name) for name in chosen.named)
        return tuple(sorted(keys))


@dataclass(frozen=True)
class RateLimits:
    """``rateLimits``: requests per second."""

    outbound_updates: int = 100  #: ``maxOutboundSyncUpdatesPerSecond``: requests the sync sends the cloud
    total_local_requests: int = 200  #: ``maxTotalLocalRequestsRate``: IPC shadow requests, all things
    local_requests_per_thing: int = 20  #: ``maxLocalRequestsPerSecondPerThing``


@dataclass(frozen=True)
class ShadowSyncSettings:
    """The whole configuration; ``synchronize`` None means local shadows only."""

    synchronize: SyncTargets | None = None
    periodic: bool = False  #: ``strategy.type`` is ``periodic``: changes are synced every ``delay`` seconds
    delay: float = DEFAULT_PERIODIC_DELAY
    rate_limits: RateLimits = field(default_factory=RateLimits)
    size_limit: int = DEFAULT_SIZE_LIMIT


def parse_shadow_settings(configuration: Any) -> ShadowSyncSettings:
    """The settings of a configuration in Greengrass's keys (None or ``{}``: the defaults, local only).

    Raises:
        ShadowConfigurationError: an unknown key or a value that cannot be used, naming its dotted key.
    """
    if configuration is None:
        configuration = {}
    if not isinstance(configuration, Mapping):
        raise ShadowConfigurationError("", f"must be an object, not {type(configuration).__name__}")
    _only(configuration, "", _TOP_KEYS)
    synchronize = configuration.get(SYNCHRONIZE)
    periodic, delay = _strategy(configuration.get(STRATEGY))
    size = _integer(configuration.get(SIZE_LIMIT), SIZE_LIMIT, default=DEFAULT_SIZE_LIMIT)
    if size > MAX_SIZE_LIMIT:
        raise ShadowConfigurationError(SIZE_LIMIT, f"must be at most {MAX_SIZE_LIMIT}, not {size}")
    return ShadowSyncSettings(
        synchronize=None if synchronize is None else _targets(synchronize),
        periodic=periodic,
        delay=delay,
        rate_limits=_rate_limits(configuration.get(RATE_LIMITS)),
        size_limit=size,
    )


def _only(body: Mapping[Any, Any], key: str, allowed: tuple[str, ...]) -> None:
    unknown = sorted(str(name) for name in body if name not in allowed)
    if unknown:
        where = f"{key}.{unknown[0]}" if key else unknown[0]
        raise ShadowConfigurationError(where, f"is not supported (the keys are {', '.join(allowed)})")


def _object(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ShadowConfigurationError(key, f"must be an object, not {type(value).__name__}")
    return value


def _flag(value: Any, key: str, *, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ShadowConfigurationError(key, f"must be true or false, not {value!r}")


def _number(value: Any, key: str) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    if number is None or not 0 < number < 2**31:
        raise ShadowConfigurationError(key, f"must be a positive number, not {value!r}")
    return number


def _integer(value: Any, key: str, *, default: int) -> int:
    if value is None:
        return default
    number = _number(value, key)
    if not number.is_integer():
        raise ShadowConfigurationError(key, f"must be a whole number, not {value!r}")
    return int(number)


def _targets(value: Any) -> SyncTargets:
    body = _object(value, SYNCHRONIZE)
    _only(body, SYNCHRONIZE, _SYNC_KEYS)
    core = body.get("coreThing")
    things: dict[str, ThingShadows] = {}
    listed = body.get("shadowDocuments")
    if listed is not None:
        if not isinstance(listed, list):
            raise ShadowConfigurationError(f"{SYNCHRONIZE}.shadowDocuments", "must be a list")
        for index, entry in enumerate(listed):
            key = f"{SYNCHRONIZE}.shadowDocuments[{index}]"
            shadows = _thing_shadows(entry, key, also=("thingName",))
            thing = _thing_name(entry.get("thingName"), f"{key}.thingName")
            _add(things, thing, shadows)
    mapped = body.get("shadowDocumentsMap")
    if mapped is not None:
        for thing, entry in _object(mapped, f"{SYNCHRONIZE}.shadowDocumentsMap").items():
            key = f"{SYNCHRONIZE}.shadowDocumentsMap.{thing}"
            _thing_name(thing, key)
            _add(things, thing, _thing_shadows(entry, key))
    return SyncTargets(
        core=None if core is None else _thing_shadows(core, f"{SYNCHRONIZE}.coreThing"),
        things=tuple(sorted(things.items())),
        direction=_direction(body.get("direction")),
    )


def _add(things: dict[str, ThingShadows], thing: str, shadows: ThingShadows) -> None:
    known = things.get(thing)
    things[thing] = shadows if known is None else known.union(shadows)


def _thing_name(value: Any, key: str) -> str:
    try:
        return validate_thing_name(value)
    except ShadowError as exc:
        raise ShadowConfigurationError(key, f"is not a thing name: {exc.message}") from None


def _thing_shadows(value: Any, key: str, *, also: tuple[str, ...] = ()) -> ThingShadows:
    body = _object(value, key)
    _only(body, key, (*also, *_THING_KEYS))
    classic = _flag(body.get("classic"), f"{key}.classic", default=True)
    named = body.get("namedShadows")
    if named is None:
        return ThingShadows(classic, ())
    if not isinstance(named, list):
        raise ShadowConfigurationError(f"{key}.namedShadows", "must be a list of shadow names")
    names = set()
    for index, name in enumerate(named):
        where = f"{key}.namedShadows[{index}]"
        if not isinstance(name, str) or not name:
            raise ShadowConfigurationError(where, f"must be a shadow name, not {name!r}")
        try:
            names.add(validate_shadow_name(name))
        except ShadowError as exc:
            raise ShadowConfigurationError(where, f"is not a shadow name: {exc.message}") from None
    return ThingShadows(classic, tuple(sorted(names)))


def _direction(value: Any) -> SyncDirection:
    if value is None:
        return SyncDirection.BETWEEN_DEVICE_AND_CLOUD
    if isinstance(value, str):
        for direction in SyncDirection:
            if value.strip().lower() == direction.value.lower():
                return direction
    choices = ", ".join(direction.value for direction in SyncDirection)
    raise ShadowConfigurationError(f"{SYNCHRONIZE}.direction", f"must be one of {choices}, not {value!r}")


def _strategy(value: Any) -> tuple[bool, float]:
    if value is None:
        return False, DEFAULT_PERIODIC_DELAY
    body = _object(value, STRATEGY)
    _only(body, STRATEGY, ("type", "delay"))
    kind = body.get("type", "realTime")
    if not isinstance(kind, str) or kind.strip().lower() not in ("realtime", "periodic"):
        raise ShadowConfigurationError(f"{STRATEGY}.type", f"must be realTime or periodic, not {kind!r}")
    delay = body.get("delay")
    seconds = DEFAULT_PERIODIC_DELAY if delay is None else _number(delay, f"{STRATEGY}.delay")
    return kind.strip().lower() == "periodic", seconds


def _rate_limits(value: Any) -> RateLimits:
    if value is None:
        return RateLimits()
    body = _object(value, RATE_LIMITS)
    _only(body, RATE_LIMITS, tuple(_RATE_KEYS))
    limits = [
        _integer(body.get(name), f"{RATE_LIMITS}.{name}", default=default)
        for name, default in _RATE_KEYS.items()
    ]
    return RateLimits(*limits)
