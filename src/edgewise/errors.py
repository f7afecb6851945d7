"""The root of every error Edgewise raises on purpose.

EdgewiseError
 ├── recipe.RecipeError            a recipe that cannot be used (lists every problem)
 ├── versions.VersionError         a version or range that does not parse
 ├── runtime.deployment.ResolutionError   no set of versions satisfies every requirement
 ├── runtime.deployment.DeploymentError   a deployment that failed (carries the reason)
 ├── runtime.config.ConfigError    a configuration update that cannot be applied
 └── runtime.ipc.IpcError          an IPC call that failed (mapped to Greengrass error shapes)
"""

from __future__ import annotations


class EdgewiseError(Exception):
    """Base class of the errors Edgewise raises on purpose."""
