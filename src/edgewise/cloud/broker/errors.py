"""Errors of the broker domain: bad broker settings or permissions, a Mosquitto that will not run.

EdgewiseError
 └── BrokerError
      ├── BrokerConfigError        settings or device permissions that cannot be rendered (names the field)
      ├── BrokerStartError         Mosquitto exited or did not listen in time (carries the log tail)
      ├── BrokerReloadError        Mosquitto logged an error while re-reading its files on SIGHUP
      ├── BrokerNotRunningError    reload/disconnect asked of a broker that is not running (misuse)
      └── BrokerControlError       the broker did not carry out a control action (e.g. a disconnect)
"""

from __future__ import annotations

from edgewise.errors import EdgewiseError


class BrokerError(EdgewiseError):
    """Base class of the broker domain's errors."""


class BrokerConfigError(BrokerError, ValueError):
    """A setting or permission that cannot be rendered into Mosquitto's files; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class BrokerStartError(BrokerError):
    """Mosquitto exited before listening, or did not listen within the start timeout."""

    def __init__(self, message: str, *, exit_code: int | None, log_tail: str) -> None:
        super().__init__(f"{message}; last log lines:\n{log_tail}" if log_tail else message)
        self.exit_code = exit_code
        self.log_tail = log_tail


class BrokerReloadError(BrokerError):
    """Mosquitto reported an error while re-reading its files; what it kept in force is undefined."""

    def __init__(self, message: str, *, log_tail: str) -> None:
        super().__init__(f"{message}:\n{log_tail}")
        self.log_tail = log_tail


class BrokerNotRunningError(BrokerError, RuntimeError):
    """An action that needs a running broker was asked of one that is stopped or given up on."""


class BrokerControlError(BrokerError):
    """The broker did not carry out a control action on a client; ``client_id`` names the client."""

    def __init__(self, message: str, *, client_id: str) -> None:
        super().__init__(message)
        self.client_id = client_id
