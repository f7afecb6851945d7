"""The errors of the ML pipeline, in one module so that every part raises and catches the same classes."""

from __future__ import annotations

from edgewise.errors import EdgewiseError


class MlError(EdgewiseError):
    """Base class of the ML pipeline's errors."""


class MlNameError(MlError):
    """A dataset or model name that is not valid."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DatasetError(MlError):
    """A dataset that cannot be built, read or described (the message names the field or file)."""


class TrainingError(MlError):
    """A training run that cannot produce a model."""


class ExportError(MlError):
    """A model that cannot be converted to ONNX."""


class FidelityError(ExportError):
    """An exported model whose outputs differ from the native model's beyond the tolerance."""


class RegistryError(MlError):
    """A model registry request that failed; ``not_found`` marks a missing model, version or alias."""

    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found
