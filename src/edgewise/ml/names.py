"""The names of datasets and models: letters, digits, ``_`` and ``-``, starting with a letter or digit, at most
64 characters. A model NAME becomes the component ``edgewise.models.NAME``, so it must also be a valid part of a
component name.
"""

from __future__ import annotations

import re
from typing import Final

from edgewise.ml.errors import MlNameError

#: Anchored, for pydantic and FastAPI ``pattern=``.
ML_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
#: For ``fullmatch``.
ML_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def check_ml_name(field: str, name: str) -> str:
    """Return ``name`` when it is a valid dataset or model name, else raise ``MlNameError`` naming ``field``."""
    if not name:
        raise MlNameError(field, "must not be empty")
    if len(name) > 64:
        raise MlNameError(field, f"{name[:70]!r} is longer than 64 characters")
    if ML_NAME.fullmatch(name) is None:
        raise MlNameError(
            field,
            f"{name!r} must start with a letter or digit and hold only letters, digits, '_' and '-'",
        )
    return name
