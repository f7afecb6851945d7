"""API roles and the kinds of access they grant.

``read-only`` may read everything but tokens; ``operator`` may also change the registry (and, later, the other
fleet resources); ``admin`` may do everything, including managing API tokens.
"""

from __future__ import annotations

import enum


class Access(enum.Enum):
    """What a request needs to do."""

    READ = "read"
    """Read fleet resources (GET)."""
    WRITE = "write"
    """Create, change or delete fleet resources."""
    ADMIN = "admin"
    """Manage the API itself: tokens."""


class Role(enum.StrEnum):
    """The role of an API token."""

    ADMIN = "admin"
    """Every access, tokens included."""
    OPERATOR = "operator"
    """Reads and fleet writes."""
    READ_ONLY = "read-only"
    """Reads only."""

    def grants(self, access: Access) -> bool:
        """Whether a token with this role may perform ``access``."""
        return access in _GRANTS[self]


_GRANTS: dict[Role, frozenset[Access]] = {
    Role.ADMIN: frozenset(Access),
    Role.OPERATOR: frozenset({Access.READ, Access.WRITE}),
    Role.READ_ONLY: frozenset({Access.READ}),
}
