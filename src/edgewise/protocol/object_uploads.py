"""Object uploads: how a device sends the file of a stream manager S3 export task to the cloud's object store.

The device ``PUT``\\ s the file over mutual TLS to the cloud's HTTPS listener at :func:`upload_target`
(``/streams/s3/<bucket>/<percent-encoded key>``) with ``Content-Length``, the body's SHA-256 in hex in
:data:`DIGEST_HEADER` and its user metadata as :data:`METADATA_PREFIX` headers. The cloud answers as HTTPS
publish does (``{"message": ..., "traceId": ...}``; 200 once stored). The device may upload when its policy
allows ``iot:Publish`` on :func:`upload_topic`.

Names follow S3's rules, as the ``stream-manager`` SDK checks them in ``S3ExportTaskDefinition``:
:func:`bucket_problem` and :func:`key_problem` say what is wrong with a name (None when it is valid), so each
side words its own error. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote

UPLOAD_PATH: Final = "/streams/s3/"
DIGEST_HEADER: Final = "x-amz-content-sha256"
METADATA_PREFIX: Final = "x-amz-meta-"
#: S3's largest single PUT.
MAX_OBJECT_BYTES: Final = 5 * 1024**3
MAX_KEY_BYTES: Final = 1024
#: S3's bound on user metadata: names and values together.
MAX_METADATA_BYTES: Final = 2048
#: One dot-separated label of a bucket name.
_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
#: Characters the SDK refuses in a key, space included (its ``!{timestamp:...}`` templates are not expanded by
#: Edgewise).
_KEY_REFUSED: Final = frozenset(" \\{}%`[]\"'<>~#^?|")


def upload_topic(thing_name: str, bucket: str) -> str:
    """The topic whose ``iot:Publish`` right lets ``thing_name`` upload into ``bucket``."""
    return f"$aws/things/{thing_name}/streams/s3/{bucket}"


def upload_target(bucket: str, key: str) -> str:
    """The request target of an upload of ``key`` into ``bucket`` (both valid)."""
    return UPLOAD_PATH + bucket + "/" + quote(key, safe="/")


def bucket_problem(bucket: str) -> str | None:
    """Why ``bucket`` is not an S3 bucket name, or None when it is one."""
    labels = bucket.split(".")
    if (
        not 3 <= len(bucket) <= 63
        or not all(_LABEL.fullmatch(label) for label in labels)
        or (len(labels) > 1 and all(label.isdigit() for label in labels))
    ):
        return (
            f"{bucket[:80]!r} is not an S3 bucket name: 3 to 63 characters, labels of lowercase letters, digits "
            "and '-' separated by '.', each starting and ending with a letter or digit, not an IP address"
        )
    return None


def key_problem(key: str) -> str | None:
    """Why ``key`` is not an object key, or None when it is one."""
    size = len(key.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= MAX_KEY_BYTES:
        return f"{size} bytes long; a key has 1 to {MAX_KEY_BYTES}"
    if "!{" in key:
        return "!{timestamp:...} templates are not supported by Edgewise; give the key itself"
    refused = sorted({char for char in key if char in _KEY_REFUSED or ord(char) < 0x20 or ord(char) == 0x7F})
    if refused:
        return f"has characters an object key may not hold: {refused!r}"
    return None
