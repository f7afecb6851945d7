"""asyncio without the ``ssl`` module until something imports it: 4.5 MiB of a device's idle memory.

asyncio's event loop modules import ``ssl`` (and with it OpenSSL) eagerly, although they need it only to run
TLS. A runtime whose configuration has no cloud, no client devices and no TLS upload never does. Importing
this module first (``python -m edgewise.runtime`` does) loads asyncio as it loads on a Python built without
``ssl``, which its modules support, and arms them again the moment anything imports ``ssl``: the cloud link's
TLS settings, the client devices' gate, uvloop. From then on asyncio is exactly as if ``ssl`` had been there
from the start: the modules that keep it as a global get it, and ``asyncio.sslproto``, which reads it while
it loads, is loaded again.

Nothing happens where asyncio or ``ssl`` is already loaded (tests, the CLI, an embedding application).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from importlib.abc import Loader

#: The modules of asyncio that import ``ssl`` and fall back to ``ssl = None`` without it.
_KEEPERS = ("asyncio.base_events", "asyncio.selector_events", "asyncio.sslproto")
#: The one that also reads it while it loads.
_RELOADED = "asyncio.sslproto"


class _Loader:
    """Loads ``ssl`` as its own loader does, then gives it to asyncio."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        created: ModuleType | None = self._loader.create_module(spec)
        return created

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _arm(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _Finder:
    """Finds ``ssl`` with a loader that arms asyncio once it has loaded it (then this finder steps aside)."""

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name != "ssl":
            return None
        spec = PathFinder.find_spec(name, path, target)
        if spec is None or spec.loader is None:
            return spec
        # Duck-typed: importlib.abc would import importlib.resources into every runtime.
        spec.loader = cast("Loader", _Loader(spec.loader))
        return spec


def _arm(ssl: ModuleType) -> None:
    # Only now: a mere lookup of the spec (importlib.util.find_spec) loads nothing.
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _Finder)]
    for name in _KEEPERS:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "ssl", ssl) is None:
            module.ssl = ssl  # type: ignore[attr-defined]
    if _RELOADED in sys.modules:
        importlib.reload(sys.modules[_RELOADED])


def load_asyncio() -> bool:
    """Import asyncio without ``ssl`` and arm it for when ``ssl`` is imported; True if it did, False where
    asyncio or ``ssl`` was already loaded (asyncio is then as it was)."""
    if "asyncio" in sys.modules or "ssl" in sys.modules:
        return False
    # A None entry makes `import ssl` raise ImportError, which is how asyncio sees a Python without ssl.
    sys.modules["ssl"] = None  # type: ignore[assignment]
    try:
        import asyncio  # noqa: F401
    finally:
        del sys.modules["ssl"]
    sys.meta_path.insert(0, _Finder())
    return True


load_asyncio()
