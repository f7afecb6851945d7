"""The names that travel between recipes, devices and the cloud, with AWS's rules: component names and thing
(or thing group) names. Shared, so that a name one side accepts is a name the other side accepts.

The ``*_PATTERN`` strings suit pydantic and FastAPI ``pattern=`` (anchored); the compiled ``*_NAME`` expressions
include the length and are meant for ``fullmatch``.
"""

from __future__ import annotations

import re
from typing import Final

#: Greengrass component names: letters, digits, ``.``, ``_`` and ``-``, at most 128 characters.
COMPONENT_NAME_PATTERN: Final = r"^[a-zA-Z0-9._-]+$"
COMPONENT_NAME_MAX_LENGTH: Final = 128
COMPONENT_NAME: Final = re.compile(r"[a-zA-Z0-9._-]{1,128}")

#: AWS IoT thing and thing group names: letters, digits, ``:``, ``_`` and ``-``, at most 128 characters.
THING_NAME_PATTERN: Final = r"^[a-zA-Z0-9:_-]+$"
THING_NAME_MAX_LENGTH: Final = 128
THING_NAME: Final = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
