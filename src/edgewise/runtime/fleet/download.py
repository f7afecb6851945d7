"""Artifacts from signed HTTPS URLs into the component store: resumed after an interruption, verified before use.

A download goes to ``<file>.part`` beside its destination; after a dropped connection (or a runtime restart)
the next attempt asks for the rest with ``Range: bytes=N-``. Only a file whose size and SHA-256 match what the
cloud promised is renamed into place and installed. stdlib ``http.client`` only: the runtime gains no
dependency. Everything here blocks except :meth:`ArtifactDownloader.cancel`; the cloud source runs it in a thread.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import logging
import shutil
import socket
import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from edgewise.recipe import Artifact, select_manifest
from edgewise.runtime.deployment import ComponentStore, DeploymentError, file_digest
from edgewise.runtime.fleet.errors import ArtifactDownloadError
from edgewise.runtime.fleet.resolve import ComponentOffer
from edgewise.runtime.paths import RootPaths
from edgewise.runtime.settings import ArtifactLimits

logger = logging.getLogger(__name__)

_CHUNK = 256 * 1024
#: Answers after which asking again cannot help (the URL is wrong, expired or forbidden).
_FINAL_STATUSES = (400, 401, 403, 404, 410)


@dataclass(frozen=True)
class DownloadSettings:
    """How hard one artifact is tried: attempts, the back-off between them, and the socket timeout."""

    attempts: int = 8
    first_delay: float = 0.5
    max_delay: float = 30.0
    timeout: float = 60.0


class _Retry(Exception):
    """Internal: this attempt failed in a way another attempt may not."""


def artifact_context(
    root_ca: Path, certificate: Path | None = None, private_key: Path | None = None
) -> ssl.SSLContext:
    """A client context trusting the cloud's CA (and presenting the device certificate if asked). Blocks."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(root_ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certificate is not None and private_key is not None:
        context.load_cert_chain(str(certificate), str(private_key))
    return context


def sha256_base64(path: Path) -> str:
    with path.open("rb") as handle:
        return base64.b64encode(hashlib.file_digest(handle, "sha256").digest()).decode("ascii")


class ArtifactDownloader:
    """Downloads artifacts; one at a time, from a worker thread. :meth:`cancel` may be called from any thread."""

    def __init__(self, context: ssl.SSLContext, settings: DownloadSettings | None = None) -> None:
        self._context = context
        self._settings = settings or DownloadSettings()
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None  # of the request in progress (the response may own it)

    def reset(self) -> None:
        """Allow downloads again after :meth:`cancel`."""
        self._cancelled.clear()

    def cancel(self) -> None:
        """Abort the download in progress (its socket is shut down) and refuse new ones until :meth:`reset`."""
        self._cancelled.set()
        with self._lock:
            current = self._socket
        if current is not None:
            with contextlib.suppress(OSError):  # already closed
                current.shutdown(socket.SHUT_RDWR)

    def fetch(self, url: str, destination: Path, *, digest: str, size: int | None = None) -> None:
        """Make ``destination`` the artifact at ``url``, whose SHA-256 (base64) is ``digest``.

        Raises:
            ArtifactDownloadError: every attempt failed, the server refused the URL, the download was
                cancelled, or the file that arrived has another size or digest (it is then deleted).
        """
        if destination.is_file() and sha256_base64(destination) == digest:
            return
        destination.parent.mkdir(parents=True, exist_ok=True)
        part = destination.with_name(f"{destination.name}.part")
        settings = self._settings
        failure = ""
        for attempt in range(settings.attempts):
            if attempt:
                delay = min(settings.max_delay, settings.first_delay * 2 ** (attempt - 1))
                logger.warning(
                    "Download of %s interrupted (%s); attempt %d of %d in %.1f s",
                    destination.name,
                    failure,
                    attempt + 1,
                    settings.attempts,
                    delay,
                )
                if self._cancelled.wait(delay):
                    break
            if self._cancelled.is_set():
                break
            try:
                self._attempt(url, part, size)
            except _Retry as exc:
                failure = str(exc)
                continue
            break
        else:
            raise ArtifactDownloadError(
                f"Cannot download artifact {destination.name} after {settings.attempts} attempts: {failure}"
            )
        if self._cancelled.is_set():
            raise ArtifactDownloadError(f"The download of artifact {destination.name} was cancelled")
        self._verify(part, destination.name, digest=digest, size=size)
        part.replace(destination)

    @staticmethod
    def _verify(part: Path, name: str, *, digest: str, size: int | None) -> None:
        actual_size = part.stat().st_size
        if size is not None and actual_size != size:
            part.unlink()
            raise ArtifactDownloadError(f"Artifact {name} has {actual_size} bytes, but {size} were expected")
        actual = sha256_base64(part)
        if actual != digest:
            part.unlink()
            raise ArtifactDownloadError(
                f"Artifact {name} has SHA-256 digest {actual}, but {digest} was expected; it was discarded"
            )

    def _attempt(self, url: str, part: Path, size: int | None) -> None:
        """One GET, resuming after what ``part`` already holds. Raises _Retry or ArtifactDownloadError."""
        address = urlsplit(url)
        if address.scheme != "https" or not address.hostname:
            raise ArtifactDownloadError(f"Artifact URL {url.split('?')[0]!r} is not an https:// URL")
        offset = part.stat().st_size if part.exists() else 0
        if size is not None and offset >= size:
            if offset == size:
                return
            offset = 0
        target = address.path or "/"
        if address.query:
            target += f"?{address.query}"
        connection = http.client.HTTPSConnection(
            address.hostname, address.port or 443, context=self._context, timeout=self._settings.timeout
        )
        try:
            connection.request("GET", target, headers={"Range": f"bytes={offset}-"} if offset else {})
            with self._lock:
                self._socket = connection.sock
            if self._cancelled.is_set():
                return
            response = connection.getresponse()
            if response.status == 206 and offset:
                if not (response.getheader("Content-Range") or "").startswith(f"bytes {offset}-"):
                    raise _Retry(
                        f"the server resumed at the wrong place ({response.getheader('Content-Range')})"
                    )
                mode = "ab"
            elif response.status == 200:
                mode = "wb"
            elif response.status == 416:
                part.unlink(missing_ok=True)
                raise _Retry("the server cannot resume this download; starting over")
            elif response.status in _FINAL_STATUSES:
                raise ArtifactDownloadError(
                    f"The artifact server refused {address.path} with HTTP {response.status} {response.reason}"
                    + (" (the signed URL may have expired)" if response.status == 403 else "")
                )
            else:
                raise _Retry(f"HTTP {response.status} {response.reason}")
            with part.open(mode) as file:
                while chunk := response.read(_CHUNK):
                    file.write(chunk)
                    if self._cancelled.is_set():
                        return
            if response.length:  # http.client ends a short body quietly; the rest is still owed
                raise _Retry(f"the connection closed {response.length} bytes before the end")
        except (OSError, http.client.HTTPException) as exc:
            raise _Retry(str(exc) or type(exc).__name__) from exc
        finally:
            with self._lock:
                self._socket = None
            connection.close()


def _installed(
    offer: ComponentOffer, store: ComponentStore, paths: RootPaths, artifacts: Sequence[Artifact]
) -> bool:
    """Whether this exact recipe and every artifact with its promised digest are in the store already."""
    recipe = offer.recipe
    recipe_path = store.recipe_path(recipe.name, recipe.version)
    if not recipe_path.is_file() or recipe_path.read_bytes() != offer.text:
        return False
    directory = paths.component_artifacts(recipe.name, recipe.version)
    for artifact in artifacts:
        source = offer.artifacts.get(artifact.uri)
        path = directory / artifact.file_name
        if source is None or not path.is_file() or file_digest(path) != source.digest:
            return False
    return True


def install_offer(
    offer: ComponentOffer,
    *,
    paths: RootPaths,
    platform: Mapping[str, str],
    downloader: ArtifactDownloader,
    limits: ArtifactLimits | None = None,
) -> None:
    """Download what ``offer`` needs on this platform and install it into the component store. Blocks.

    An artifact already installed with the promised digest is not downloaded again. The recipe goes into the
    store last, so a recipe there always has its artifacts. ZIP artifacts are unpacked within ``limits``. The
    downloaded files are removed once installed or refused; only an interrupted download is kept, to be resumed.

    Raises:
        DeploymentError: no manifest matches this device, an artifact has no URL or no digest, a download
            failed, or the component store refused the files.
    """
    recipe = offer.recipe
    manifest = select_manifest(recipe, platform)
    if manifest is None:
        attributes = ", ".join(f"{key}={value}" for key, value in sorted(platform.items()))
        raise DeploymentError(
            f"No manifest of {recipe.name} {recipe.version} matches this device ({attributes})",
            error_types=("COMPONENT_RECIPE_ERROR",),
        )
    store = ComponentStore(paths, limits=limits)
    if _installed(offer, store, paths, manifest.artifacts):
        return
    staging_root = paths.deployments_dir / "downloads"
    staging = staging_root / recipe.name / recipe.version
    installed_dir = paths.component_artifacts(recipe.name, recipe.version)
    for artifact in manifest.artifacts:
        name = artifact.file_name
        if not name or name in (".", ".."):
            raise ArtifactDownloadError(
                f"Artifact URI {artifact.uri!r} of {recipe.name} {recipe.version} has no file name"
            )
        source = offer.artifacts.get(artifact.uri)
        installed = installed_dir / name
        if source is None:
            raise ArtifactDownloadError(
                f"The cloud gave no download URL for artifact {artifact.uri} of {recipe.name} {recipe.version}"
            )
        if installed.is_file() and file_digest(installed) == source.digest:
            continue
        logger.info("Downloading %s of %s %s", name, recipe.name, recipe.version)
        downloader.fetch(source.url, staging / name, digest=source.digest, size=source.size)
    try:
        store.install(recipe, offer.text, manifest, staging_root, copy_unlisted=False)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):  # other versions of it are still being staged
            staging.parent.rmdir()
