"""Semantic versions and npm-style version ranges, as Greengrass recipes and deployments write them.

:class:`Version` is a strict SemVer 2 version with the limits Greengrass puts on component versions
(at most 64 characters, each number at most 999999). :class:`Requirement` is an npm range, as a recipe's
``VersionRequirement`` is; its semantics come from the ``node-semver`` package, including npm's rule that a
range only admits a prerelease version when one of its comparators names a prerelease of the same
``major.minor.patch``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from edgewise.errors import EdgewiseError

MAX_VERSION_LENGTH = 64
MAX_VERSION_NUMBER = 999_999

_NUMBER = r"0|[1-9][0-9]*"
_PRERELEASE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = r"[0-9A-Za-z-]+"
_VERSION = re.compile(
    rf"(?P<major>{_NUMBER})\.(?P<minor>{_NUMBER})\.(?P<patch>{_NUMBER})"
    rf"(?:-(?P<pre>{_PRERELEASE_ID}(?:\.{_PRERELEASE_ID})*))?"
    rf"(?:\+(?P<build>{_BUILD_ID}(?:\.{_BUILD_ID})*))?"
)
_PRERELEASE_ID_RE = re.compile(_PRERELEASE_ID)
_BUILD_ID_RE = re.compile(_BUILD_ID)


class VersionError(EdgewiseError):
    """A version or a version range that does not parse; the message quotes the text."""

    def __init__(self, message: str, *, text: object = None) -> None:
        super().__init__(message)
        self.text = text


@dataclass(frozen=True, eq=False, repr=False)
class Version:
    """A semantic version ``major.minor.patch[-prerelease][+build]``.

    Versions are totally ordered by SemVer 2 precedence. Build metadata is kept (``str()`` gives it
    back) but takes no part in ordering, equality or hashing: ``1.0.0+a == 1.0.0+b``.
    """

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for part in ("major", "minor", "patch"):
            number = getattr(self, part)
            if (
                isinstance(number, bool)
                or not isinstance(number, int)
                or not 0 <= number <= MAX_VERSION_NUMBER
            ):
                msg = f"Version {part} must be a whole number from 0 to {MAX_VERSION_NUMBER}, got {number!r}"
                raise VersionError(msg, text=number)
        for identifier in self.prerelease:
            if not isinstance(identifier, str) or not _PRERELEASE_ID_RE.fullmatch(identifier):
                msg = f"Invalid prerelease identifier {identifier!r} in a version"
                raise VersionError(msg, text=identifier)
        for identifier in self.build:
            if not isinstance(identifier, str) or not _BUILD_ID_RE.fullmatch(identifier):
                msg = f"Invalid build identifier {identifier!r} in a version"
                raise VersionError(msg, text=identifier)

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse ``text`` strictly: no leading ``v``, no spaces, at most 64 characters."""
        if not isinstance(text, str):
            msg = f"A version must be a string, got {type(text).__name__} {text!r}"
            raise VersionError(msg, text=text)
        if len(text) > MAX_VERSION_LENGTH:
            msg = f"Version {text[:80]!r} is longer than {MAX_VERSION_LENGTH} characters"
            raise VersionError(msg, text=text)
        if text[:1] in ("v", "V"):
            msg = f"Version {text!r} must not start with {text[0]!r}; write it as {text[1:]!r}"
            raise VersionError(msg, text=text)
        match = _VERSION.fullmatch(text)
        if match is None:
            msg = f"Version {text!r} is not a semantic version major.minor.patch[-prerelease][+build]"
            raise VersionError(msg, text=text)
        pre, build = match["pre"], match["build"]
        try:
            return cls(
                int(match["major"]),
                int(match["minor"]),
                int(match["patch"]),
                tuple(pre.split(".")) if pre else (),
                tuple(build.split(".")) if build else (),
            )
        except VersionError as exc:
            msg = f"Version {text!r} is invalid: {exc}"
            raise VersionError(msg, text=text) from None

    @property
    def is_prerelease(self) -> bool:
        """True for versions such as ``1.0.0-beta.1``."""
        return bool(self.prerelease)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def __repr__(self) -> str:
        return f"Version({str(self)!r})"

    def _precedence(self) -> tuple[Any, ...]:
        # A release sorts after all of its prereleases; numeric identifiers sort before alphanumeric ones.
        if not self.prerelease:
            return (self.major, self.minor, self.patch, 1, ())
        identifiers = tuple((0, int(i), "") if i.isdigit() else (1, 0, i) for i in self.prerelease)
        return (self.major, self.minor, self.patch, 0, identifiers)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._precedence() == other._precedence()

    def __hash__(self) -> int:
        return hash(self._precedence())

    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._precedence() < other._precedence()

    def __le__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._precedence() <= other._precedence()

    def __gt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._precedence() > other._precedence()

    def __ge__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._precedence() >= other._precedence()


@functools.lru_cache(maxsize=4096)
def _semver(text: str) -> Any:
    import nodesemver  # on first use: it compiles many regular expressions at import, slowing the runtime's start

    return nodesemver.make_semver(text, loose=False)


@functools.lru_cache(maxsize=4096)
def _node_range(text: str) -> Any:
    """nodesemver's range of ``text``, kept: a fleet deployment has every device send the same requirements,
    and parsing one took a third of what answering a resolve request cost the cloud. Ranges are only read."""
    import nodesemver  # on first use, as in _semver

    return nodesemver.make_range(text, loose=False)


class Requirement:
    """An npm-style version range: ``1.0.0``, ``>=1.2.0 <2.0.0``, ``^1.2``, ``~2.0.0``, ``1.0.x``, ``*``,
    ``1.0.0 - 2.0.0`` and ``||`` alternatives.

    Two requirements are equal when their text is; ``str()`` gives the text as written (trimmed).
    """

    __slots__ = ("_range", "_text")

    def __init__(self, text: str, node_range: Any) -> None:
        self._text = text
        self._range = node_range

    @classmethod
    def parse(cls, text: str) -> Requirement:
        """Parse an npm range; raise :class:`VersionError` naming ``text`` if it is not one."""
        if not isinstance(text, str):
            msg = f"A version requirement must be a string, got {type(text).__name__} {text!r}"
            raise VersionError(msg, text=text)
        stripped = text.strip()
        if not stripped:
            msg = "A version requirement must not be empty (write '*' to accept any version)"
            raise VersionError(msg, text=text)
        try:
            node_range = _node_range(stripped)
        except (ValueError, TypeError, IndexError, AttributeError) as exc:
            msg = f"Version requirement {text!r} is not a valid npm-style range"
            raise VersionError(msg, text=text) from exc
        return cls(stripped, node_range)

    def allows(self, version: Version | str) -> bool:
        """True when ``version`` is inside the range (npm semantics for prereleases)."""
        if isinstance(version, str):
            version = Version.parse(version)
        return bool(self._range.test(_semver(str(version))))

    def admits_major(self, major: int) -> bool:
        """True when some version ``major.x.y`` is inside the range: ``2.4.0``, ``^2.0.0``, ``>=2.5.0 <2.11.0``
        and ``*`` admit major 2; ``^1.0.0``, ``<2.0.0`` and ``3.x`` do not (npm semantics, prereleases included).
        """
        # The lowest version of the major line that a range admits is the line's first version, or a version
        # one of its comparators names, or the one right after it (for ``>``): trying those is enough.
        candidates = [Version(major, 0, 0), Version(major, 0, 0, ("0",))]
        for comparators in self._range.set:
            for comparator in comparators:
                if comparator.operator is None:
                    continue
                version = Version.parse(str(comparator.semver))
                if version.major != major:
                    continue
                # A prerelease is admitted only on a tuple a comparator names, and "-0" is its lowest.
                candidates += [version, Version(major, version.minor, version.patch, ("0",))]
                if version.is_prerelease:
                    candidates.append(
                        Version(major, version.minor, version.patch, (*version.prerelease, "0"))
                    )
                elif version.patch < MAX_VERSION_NUMBER:
                    candidates.append(Version(major, version.minor, version.patch + 1))
        return any(self.allows(candidate) for candidate in candidates)

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Requirement({self._text!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Requirement):
            return NotImplemented
        return self._text == other._text

    def __hash__(self) -> int:
        return hash(self._text)
