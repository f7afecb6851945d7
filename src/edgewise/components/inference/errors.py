"""The inference component's errors: a configuration it cannot use, a model it cannot load, a message it skips."""

from __future__ import annotations

from edgewise.errors import EdgewiseError


class InferenceConfigError(EdgewiseError):
    """A configuration value the inference component cannot use; names the field and the problem."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"configuration {field}: {problem}")
        self.field = field
        self.problem = problem


class ModelLoadError(EdgewiseError):
    """A verified package whose model does not load, does not fit its manifest, or fails its smoke test."""


class PayloadError(EdgewiseError):
    """A message a model cannot use: ``malformed`` when it is not a JSON object, else a field missing or not a
    number. The component counts it and goes on."""

    def __init__(self, problem: str, *, malformed: bool) -> None:
        super().__init__(problem)
        self.malformed = malformed
