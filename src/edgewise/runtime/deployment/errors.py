"""Errors of the deployment domain."""

from __future__ import annotations

from edgewise.errors import EdgewiseError


class DeploymentError(EdgewiseError):
    """A deployment that cannot be carried out; the message is the failure reason shown to the user."""

    def __init__(self, message: str, *, error_types: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.error_types = error_types


class DocumentError(DeploymentError):
    """A deployment request that is malformed: every problem names its field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems), error_types=("REQUEST_ERROR",))
        self.problems = problems


class PackageError(DeploymentError):
    """A recipe or artifact that cannot be installed into the component store."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_types=("ARTIFACT_ERROR",))
