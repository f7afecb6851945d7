"""How the registry hands a device an artifact: a signed download URL, behind one small interface.

The resolve worker answers with a URL per artifact, but the URLs belong to whoever serves the files (the data
plane, :class:`edgewise.cloud.dataplane.signing.UrlSigner`). The registry names only what it needs here, so
the data plane builds on the registry and never the other way round; ``edgewise cloud up`` passes the data
plane's signer in.
"""

from __future__ import annotations

from typing import Protocol


class ArtifactUrlSigner(Protocol):
    """Turns an artifact's SHA-256 into a URL a device may download it from, for a limited time."""

    def sign(self, sha256: str) -> str:
        """A download URL for the artifact ``sha256`` (lowercase hex)."""
        ...
