"""Errors of the client-device built-ins."""

from __future__ import annotations

from edgewise.errors import EdgewiseError


class ClientDeviceConfigurationError(EdgewiseError):
    """A configuration value of a client-device built-in that cannot be used; ``key`` is its dotted path."""

    def __init__(self, component: str, key: str, problem: str) -> None:
        super().__init__(f"{component} configuration {key} {problem}")
        self.component = component
        self.key = key
        self.problem = problem
