"""The data plane: artifact downloads over HTTPS from signed, expiring URLs, with resumable ranges."""

from __future__ import annotations

from edgewise.cloud.dataplane.app import create_data_plane_app as create_data_plane_app
from edgewise.cloud.dataplane.server import DataPlaneServer as DataPlaneServer
from edgewise.cloud.dataplane.server import DataPlaneSettings as DataPlaneSettings
from edgewise.cloud.dataplane.server import DataPlaneStartError as DataPlaneStartError
from edgewise.cloud.dataplane.signing import SignatureError as SignatureError
from edgewise.cloud.dataplane.signing import UrlSigner as UrlSigner
from edgewise.cloud.dataplane.signing import load_or_create_signing_key as load_or_create_signing_key

__all__ = [
    "DataPlaneServer",
    "DataPlaneSettings",
    "DataPlaneStartError",
    "SignatureError",
    "UrlSigner",
    "create_data_plane_app",
    "load_or_create_signing_key",
]
