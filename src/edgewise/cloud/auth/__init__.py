"""API tokens and roles: who may call the REST API, and what they may do."""

from __future__ import annotations

from edgewise.cloud.auth.dependencies import CurrentToken as CurrentToken
from edgewise.cloud.auth.dependencies import require_access as require_access
from edgewise.cloud.auth.roles import Access as Access
from edgewise.cloud.auth.roles import Role as Role

__all__ = ["Access", "CurrentToken", "Role", "require_access"]
