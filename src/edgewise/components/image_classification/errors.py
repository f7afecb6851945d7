"""The image classification component's errors: an image it cannot read, a model or configuration it cannot use."""

from __future__ import annotations

from edgewise.errors import EdgewiseError


class ImageError(EdgewiseError):
    """An image file that is not a supported PGM or PNG image; the component logs it and skips the image."""


class ImageModelError(EdgewiseError):
    """A model store whose model or labels file cannot be loaded, or whose outputs do not match its labels."""


class ImageClassificationConfigError(EdgewiseError):
    """A configuration value the component cannot use; names the key and the problem."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"configuration {key}: {problem}")
        self.key = key
        self.problem = problem
