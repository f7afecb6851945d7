"""Components that ship with Edgewise, as Greengrass recipes plus artifacts.

``recipes/`` and ``artifacts/<name>/<version>/`` use the greengrass-cli layout, so
``edgewise runtime deployment create --recipe-dir RECIPES --artifact-dir ARTIFACTS`` deploys them as they are.
"""

from __future__ import annotations

from pathlib import Path

RECIPES_DIR = Path(__file__).parent / "recipes"
ARTIFACTS_DIR = Path(__file__).parent / "artifacts"

__all__ = ["ARTIFACTS_DIR", "RECIPES_DIR"]
