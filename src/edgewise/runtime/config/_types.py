"""Names shared by the configuration store's modules and the code that calls it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

#: A node's address in the tree, from the root: ``("services", "com.example.Hello", "configuration")``.
ConfigPath: TypeAlias = tuple[str, ...]

#: ``changed``: the node at the path was added or now holds another value; ``removed``: it is gone.
ChangeKind: TypeAlias = Literal["changed", "removed"]


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """One node that a store operation added, changed or removed.

    Changes are reported at the highest node that differs: replacing ``a`` by a whole new object is one
    ``changed`` at ``("a",)``, not one per leaf below it.
    """

    path: ConfigPath
    kind: ChangeKind
