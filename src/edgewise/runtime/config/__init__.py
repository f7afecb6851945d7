"""The runtime's persistent configuration store: a timestamped JSON tree with a crash-safe log.

See :class:`ConfigStore` for the semantics and the files it keeps.
"""

from __future__ import annotations

from edgewise.runtime.config._pointer import format_pointer, parse_pointer
from edgewise.runtime.config._store import (
    DEFAULT_COMPACT_AFTER,
    DEFAULTS_TIMESTAMP,
    ChangeCallback,
    ConfigStore,
)
from edgewise.runtime.config._types import ChangeKind, ConfigChange, ConfigPath
from edgewise.runtime.config.errors import ConfigError, InvalidPointerError, StaleUpdateError

__all__ = [
    "DEFAULTS_TIMESTAMP",
    "DEFAULT_COMPACT_AFTER",
    "ChangeCallback",
    "ChangeKind",
    "ConfigChange",
    "ConfigError",
    "ConfigPath",
    "ConfigStore",
    "InvalidPointerError",
    "StaleUpdateError",
    "format_pointer",
    "parse_pointer",
]
