"""Edgewise: a self-hosted platform for intelligent workloads at the edge."""

__version__ = "0.1.0"

#: The Greengrass nucleus version this runtime is compatible with. Recipes that depend on
#: ``aws.greengrass.Nucleus`` are checked against it, and components see it as ``GGC_VERSION``.
GREENGRASS_COMPATIBILITY_VERSION = "2.12.0"

__all__ = ["GREENGRASS_COMPATIBILITY_VERSION", "__version__"]
