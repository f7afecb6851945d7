"""Errors of the configuration store.

ConfigError                  a configuration value, path or update that cannot be used
 ├── InvalidPointerError     a JSON pointer that does not follow RFC 6901
 └── StaleUpdateError        a strict merge older than a node it would change
"""

from __future__ import annotations

from edgewise.errors import EdgewiseError
from edgewise.runtime.config._types import ConfigPath


class ConfigError(EdgewiseError):
    """A configuration value, path or update that cannot be used; ``path`` is where, when known."""

    def __init__(self, message: str, *, path: ConfigPath | None = None) -> None:
        super().__init__(message)
        self.path = path


class InvalidPointerError(ConfigError):
    """A JSON pointer that does not parse; ``pointer`` is the text as given."""

    def __init__(self, pointer: str, problem: str) -> None:
        super().__init__(f"JSON pointer {pointer!r} is invalid: {problem}")
        self.pointer = pointer


class StaleUpdateError(ConfigError):
    """A strict merge that would overwrite a node modified after the update's timestamp.

    Greengrass answers ``UpdateConfiguration`` with ``FailedUpdateConditionCheckError`` in this case.
    """

    def __init__(self, path: ConfigPath, *, stored_timestamp: int, update_timestamp: int) -> None:
        where = repr("/" + "/".join(path)) if path else "the root"
        super().__init__(
            f"Configuration at {where} was modified at {stored_timestamp} ms, after the update's "
            f"timestamp {update_timestamp} ms; nothing was changed",
            path=path,
        )
        self.stored_timestamp = stored_timestamp
        self.update_timestamp = update_timestamp
