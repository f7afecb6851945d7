"""The Edgewise edge runtime: runs Greengrass v2 components on a device."""
