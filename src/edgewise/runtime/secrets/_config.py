"""The ``aws.greengrass.SecretManager`` configuration: which secrets the device has, with values sealed away.

A deployment gives secrets as (reference: docs/runtime.md, "Secrets")::

    {"secrets": [{"arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf",
                  "name": "db-password",            optional: derived from the ARN
                  "versionId": "v1",
                  "versionStages": ["AWSCURRENT"],  optional: this default
                  "secretString": "..."}]}          or "secretBinary": "<base64>"

:func:`seal_secrets` moves each value into the encrypted store and leaves a reference in its place:
``"secretString": {"encrypted": true}``. An invalid entry loses its value and carries ``"invalid": "<problem>"``
instead, so the problem is still reported where the deployment is validated. Problems never quote values.
A version's value is immutable once stored (as in AWS Secrets Manager): a new value needs a new ``versionId``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from edgewise.runtime.secrets.errors import SecretError

SECRET_MANAGER = "aws.greengrass.SecretManager"  # noqa: S105 (a component name, not a password)
SECRETS_KEY = "secrets"
DEFAULT_STAGE = "AWSCURRENT"
SecretKind = Literal["secretString", "secretBinary"]
KINDS: tuple[SecretKind, ...] = ("secretString", "secretBinary")
SEALED = "encrypted"
INVALID = "invalid"

_ARN = re.compile(r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:([A-Za-z0-9/_+=.@-]+)")
_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}")  # what Secrets Manager appends to a name in its ARN
_MAX_VERSION_ID = 64
_MAX_STAGE = 256


@dataclass(frozen=True)
class SecretVersion:
    """One version of a secret as the configuration describes it (its value lives in the store)."""

    arn: str
    name: str
    version_id: str
    stages: tuple[str, ...]
    kind: SecretKind


@dataclass(frozen=True)
class _Entry:
    version: SecretVersion | None  #: None when the entry is invalid
    value: bytes | None  #: plaintext to seal; None when already sealed or invalid
    problems: tuple[str, ...]


def _type(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def name_from_arn(arn: str) -> str:
    """The secret's name: the ARN's resource part without the 6-character suffix AWS appends."""
    match = _ARN.fullmatch(arn)
    resource = match.group(1) if match else arn
    if len(resource) > 7 and _SUFFIX.fullmatch(resource[-7:]):
        return resource[:-7]
    return resource


def _value(where: str, kind: SecretKind, raw: object, problems: list[str]) -> tuple[bytes | None, bool]:
    """(plaintext, sealed) for one value field."""
    if isinstance(raw, Mapping) and raw.get(SEALED) is True:
        return None, True
    if not isinstance(raw, str):
        problems.append(f"{where}.{kind}: expected a string, got {_type(raw)}")
        return None, False
    if kind == "secretString":
        return raw.encode("utf-8", "surrogatepass"), False
    try:
        return base64.b64decode(raw, validate=True), False
    except (binascii.Error, ValueError):
        problems.append(f"{where}.secretBinary: not valid base64")
        return None, False


def _read_entry(index: int, raw: object) -> _Entry:
    where = f"{SECRETS_KEY}[{index}]"
    if not isinstance(raw, Mapping):
        return _Entry(
            None, None, (f"{where}: expected an object with arn, versionId and a value, got {_type(raw)}",)
        )
    if isinstance(raw.get(INVALID), str):
        return _Entry(None, None, (raw[INVALID],))
    problems: list[str] = []
    arn = raw.get("arn")
    if not isinstance(arn, str) or not _ARN.fullmatch(arn):
        problems.append(
            f"{where}.arn: expected a Secrets Manager ARN "
            f"(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME), got {arn!r}"
            if isinstance(arn, str)
            else f"{where}.arn: required, a Secrets Manager ARN string"
        )
        arn = ""
    name = raw.get("name")
    if name is None:
        name = name_from_arn(arn)
    elif not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(
            f"{where}.name: expected 1 to 512 characters of A-Z a-z 0-9 / _ + = . @ -, got {name!r}"
        )
    version_id = raw.get("versionId")
    if not isinstance(version_id, str) or not 0 < len(version_id) <= _MAX_VERSION_ID:
        problems.append(f"{where}.versionId: required, a string of 1 to {_MAX_VERSION_ID} characters")
    stages = raw.get("versionStages", [DEFAULT_STAGE])
    if not isinstance(stages, list) or not all(
        isinstance(stage, str) and 0 < len(stage) <= _MAX_STAGE for stage in stages
    ):
        problems.append(f"{where}.versionStages: expected a list of stage labels such as {DEFAULT_STAGE!r}")
        stages = []
    present = [kind for kind in KINDS if kind in raw]
    if len(present) != 1:
        problems.append(
            f"{where}: expected exactly one of secretString and secretBinary, got "
            + (" and ".join(present) if present else "neither")
        )
        return _Entry(None, None, tuple(problems))
    kind = present[0]
    value, sealed = _value(where, kind, raw[kind], problems)
    if problems:
        return _Entry(None, None, tuple(problems))
    version = SecretVersion(str(arn), str(name), str(version_id), tuple(dict.fromkeys(stages)), kind)
    return _Entry(version, None if sealed else value, ())


def _check_unique(versions: list[tuple[int, SecretVersion]], problems: list[str]) -> None:
    seen: dict[tuple[str, str], int] = {}
    stages: dict[tuple[str, str], int] = {}
    names: dict[str, str] = {}
    for index, version in versions:
        where = f"{SECRETS_KEY}[{index}]"
        key = (version.arn, version.version_id)
        if key in seen:
            problems.append(
                f"{where}: version {version.version_id!r} of {version.arn} is also {SECRETS_KEY}[{seen[key]}]"
            )
        seen.setdefault(key, index)
        for stage in version.stages:
            other = stages.setdefault((version.arn, stage), index)
            if other != index:
                problems.append(
                    f"{where}: stage {stage!r} of {version.arn} is also on {SECRETS_KEY}[{other}]"
                )
        if names.setdefault(version.name, version.arn) != version.arn:
            problems.append(f"{where}.name: {version.name!r} already names {names[version.name]}")


def _secrets_list(configuration: object) -> tuple[list[Any], str | None]:
    if not isinstance(configuration, Mapping) or configuration.get(SECRETS_KEY) is None:
        return [], None
    secrets = configuration[SECRETS_KEY]
    if not isinstance(secrets, list):
        return [], f"{SECRETS_KEY}: expected a list of secrets, got {_type(secrets)}"
    return secrets, None


def read_secrets(configuration: object) -> tuple[list[SecretVersion], list[str]]:
    """The secret versions a (sealed) configuration lists, and the problems of the entries left out."""
    secrets, problem = _secrets_list(configuration)
    problems = [problem] if problem else []
    versions: list[tuple[int, SecretVersion]] = []
    for index, raw in enumerate(secrets):
        entry = _read_entry(index, raw)
        problems.extend(entry.problems)
        if entry.version is not None:
            versions.append((index, entry.version))
    _check_unique(versions, problems)
    return [version for _, version in versions], problems


def seal_secrets(
    configuration: Mapping[str, Any],
    *,
    store: Callable[[SecretVersion, bytes], None],
    stored: Callable[[SecretVersion], bool],
) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``configuration`` with every secret value replaced by a reference, and the problems found.

    ``store`` receives each plaintext value of a valid entry before it is replaced (a SecretError it raises
    becomes a problem); ``stored`` tells whether a value already sealed is really in the store. Invalid entries lose their values too: the problem takes
    their place. Nothing here raises on bad input.
    """
    sealed = copy.deepcopy(dict(configuration))
    secrets, problem = _secrets_list(configuration)
    if problem is not None:
        sealed[SECRETS_KEY] = [{INVALID: problem}]
        return sealed, [problem]
    problems: list[str] = []
    entries: list[Any] = []
    versions: list[tuple[int, SecretVersion]] = []
    for index, raw in enumerate(secrets):
        entry = _read_entry(index, raw)
        problems.extend(entry.problems)
        if entry.version is None:
            entries.append(_without_values(raw, entry.problems))
            continue
        version = entry.version
        if entry.value is not None:
            try:
                store(version, entry.value)
            except SecretError as exc:
                problem = f"{SECRETS_KEY}[{index}]: {exc}"
                problems.append(problem)
                entries.append(_without_values(raw, (problem,)))
                continue
        elif not stored(version):
            problems.append(
                f"{SECRETS_KEY}[{index}].{version.kind}: no value is stored for version {version.version_id!r} "
                f"of {version.arn}; give the value again"
            )
        versions.append((index, version))
        entries.append({**copy.deepcopy(dict(raw)), version.kind: {SEALED: True}})
    _check_unique(versions, problems)
    sealed[SECRETS_KEY] = entries
    return sealed, problems


def _without_values(raw: object, problems: tuple[str, ...]) -> dict[str, Any]:
    """An invalid entry, stripped of anything that may be a value, carrying its problems instead."""
    reason = "; ".join(problems)
    if not isinstance(raw, Mapping):
        return {INVALID: reason}
    kept = {key: copy.deepcopy(value) for key, value in raw.items() if key not in KINDS}
    kept[INVALID] = reason
    return kept
