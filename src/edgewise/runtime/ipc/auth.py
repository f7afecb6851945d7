"""Authentication tokens (``SVCUID``) that identify a component on its IPC connection.

The runtime issues one token per component and puts it in the component's environment; the IPC server
maps the token a client presents in CONNECT back to the component name. Tokens live only in memory, so a
runtime restart issues new ones (as the Greengrass nucleus does).
"""

from __future__ import annotations

import random
import string

_ALPHABET = string.ascii_uppercase + string.digits
TOKEN_LENGTH = 16
# What `secrets.choice` is, without `secrets`, whose hmac loads OpenSSL's libcrypto (3.4 MiB resident).
_SYSTEM_RANDOM = random.SystemRandom()


class TokenTable:
    """Issues, resolves and revokes component tokens. Must be used from the event loop thread."""

    def __init__(self) -> None:
        self._by_component: dict[str, str] = {}
        self._by_token: dict[str, str] = {}

    def issue(self, component: str) -> str:
        """The token of ``component``, created on first use and stable until :meth:`revoke`."""
        if not component:
            msg = "Cannot issue an IPC token for an empty component name"
            raise ValueError(msg)
        token = self._by_component.get(component)
        if token is None:
            token = _new_token()
            while token in self._by_token:
                token = _new_token()
            self._by_component[component] = token
            self._by_token[token] = component
        return token

    def component_for(self, token: str) -> str | None:
        """The component that owns ``token``, or None when the token is unknown."""
        return self._by_token.get(token)

    def revoke(self, component: str) -> None:
        """Forget the token of ``component``; the next :meth:`issue` creates a new one."""
        token = self._by_component.pop(component, None)
        if token is not None:
            del self._by_token[token]

    def __len__(self) -> int:
        return len(self._by_component)


def _new_token() -> str:
    return "".join(_SYSTEM_RANDOM.choice(_ALPHABET) for _ in range(TOKEN_LENGTH))
