"""Component resolution: a device asks the cloud for the published versions of components, the cloud answers with
their recipes and a signed download URL per artifact (docs/device-protocol.md, "Component recipes and artifacts").

The device publishes :class:`ResolveRequest` on ``$aws/things/<thing>/edgewise/components/resolve``
(:func:`request_topic`); the cloud answers on ``.../resolve/accepted`` with :class:`ResolveAccepted` or on
``.../resolve/rejected`` with :class:`ResolveRejection` (:func:`reply_topic`), echoing the request's
``clientToken`` so the device matches the reply to its request. The cloud reads a request with
:func:`parse_request`; the device reads a reply with :func:`read_reply`, then :func:`rejection_of` and
:func:`parse_accepted`, which parses every offered recipe and checks it against its listing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from edgewise.errors import EdgewiseError
from edgewise.names import COMPONENT_NAME_MAX_LENGTH, COMPONENT_NAME_PATTERN
from edgewise.recipe import Recipe, parse_recipe
from edgewise.versions import Requirement, VersionError

#: What the cloud subscribes to: every thing's resolve requests.
REQUEST_FILTER: Final = "$aws/things/+/edgewise/components/resolve"
#: The largest request the cloud reads.
MAX_REQUEST_SIZE: Final = 64 * 1024
#: The most component names one request may carry.
MAX_COMPONENTS: Final = 100
#: The most versions an answer may list per component (the cloud lists the newest).
MAX_VERSIONS: Final = 20
CLIENT_TOKEN_MAX_LENGTH: Final = 64
#: A component name in a request, as the cloud's component registry allows it.

Outcome = Literal["accepted", "rejected"]
ACCEPTED: Final = "accepted"
REJECTED: Final = "rejected"
#: The codes a rejection carries: the request is malformed, or the cloud failed to answer it.
RejectionCode = Literal["InvalidRequest", "InternalError"]
INVALID_REQUEST: Final = "InvalidRequest"
INTERNAL_ERROR: Final = "InternalError"

_THINGS = ("$aws", "things")
_RESOLVE = ("edgewise", "components", "resolve")
_NAME = re.compile(COMPONENT_NAME_PATTERN)
_SHA256_BYTES = 32


class ResolveRequestError(EdgewiseError):
    """A request the cloud refuses; it is answered on ``/rejected`` with code ``InvalidRequest`` and this
    message, which names the field and the problem."""

    code: Final[RejectionCode] = INVALID_REQUEST


class ResolveAnswerError(EdgewiseError):
    """An accepted answer the device cannot use; the message starts with the path of the field that is wrong."""


@dataclass(frozen=True)
class ResolveRequest:
    """A device's question: for each component name, the versions it would accept."""

    requirements: Mapping[str, Requirement]  #: by component name
    client_token: str | None = None


@dataclass(frozen=True)
class ArtifactSource:
    """Where one artifact is downloaded from, and what it must be."""

    url: str  #: an ``https://`` URL, signed and expiring
    digest: str  #: base64 SHA-256
    size: int | None = None  #: bytes


@dataclass(frozen=True)
class Candidate:
    """One published version as the cloud lists it in an answer."""

    version: str
    recipe: Mapping[str, Any]  #: the stored recipe document
    artifacts: Mapping[str, ArtifactSource]  #: by artifact ``Uri``


@dataclass(frozen=True)
class ResolveAccepted:
    """The cloud's answer: for each name asked for, the matching published versions, newest first (a name
    with none maps to an empty sequence)."""

    timestamp: int  #: seconds since the epoch
    components: Mapping[str, Sequence[Candidate]]
    client_token: str | None = None


@dataclass(frozen=True)
class Offer:
    """A candidate as the device reads it: its recipe parsed and checked against the name and version it is
    listed under."""

    recipe: Recipe
    document: Mapping[str, Any]  #: the recipe document as received
    artifacts: Mapping[str, ArtifactSource]  #: by artifact ``Uri``


@dataclass(frozen=True)
class ResolveRejection:
    """The cloud's refusal. The device reads ``code`` and ``message`` as text whatever their JSON type, so a
    rejection it cannot fully read still fails the request instead of leaving it waiting."""

    code: str
    message: str
    timestamp: int | None = None
    client_token: str | None = None


@dataclass(frozen=True)
class Reply:
    """A reply as it arrives at the device: matched to its request by ``client_token`` before it is read."""

    client_token: str | None
    rejected: bool  #: it came on ``/rejected``
    body: Mapping[str, Any]


def request_topic(thing: str) -> str:
    """The topic ``thing`` publishes its resolve requests on."""
    return "/".join((*_THINGS, thing, *_RESOLVE))


def reply_topic(thing: str, outcome: Outcome) -> str:
    """The topic the cloud answers ``thing`` on."""
    return f"{request_topic(thing)}/{outcome}"


def thing_of(topic: str) -> str | None:
    """The thing a resolve request topic names, or None when the topic is not one."""
    parts = topic.split("/")
    if len(parts) == 6 and tuple(parts[:2]) == _THINGS and tuple(parts[3:]) == _RESOLVE:
        return parts[2] or None
    return None


def build_request(request: ResolveRequest) -> bytes:
    """The payload of ``request``."""
    body: dict[str, Any] = {
        "components": {name: str(requirement) for name, requirement in request.requirements.items()}
    }
    if request.client_token is not None:
        body = {"clientToken": request.client_token, **body}
    return json.dumps(body).encode()


def _invalid(field: str, problem: str) -> ResolveRequestError:
    return ResolveRequestError(f"Field {field!r} is invalid: {problem}")


def _valid_token(token: Any) -> str | None:
    return token if isinstance(token, str) and 0 < len(token) <= CLIENT_TOKEN_MAX_LENGTH else None


def client_token_of(payload: bytes) -> str | None:
    """The request's ``clientToken`` when it has a valid one, to echo even in a rejection."""
    try:
        request = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return _valid_token(request.get("clientToken")) if isinstance(request, dict) else None


def parse_request(payload: bytes) -> ResolveRequest:
    """Parse and check a resolve request.

    Raises:
        ResolveRequestError: naming the field and the problem.
    """
    if len(payload) > MAX_REQUEST_SIZE:
        raise ResolveRequestError(f"The payload is larger than {MAX_REQUEST_SIZE} bytes")
    try:
        request = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ResolveRequestError(f"The payload is not JSON: {exc}") from None
    if not isinstance(request, dict):
        raise ResolveRequestError("The payload must be a JSON object")
    unknown = sorted(set(request) - {"clientToken", "components"})
    if unknown:
        raise _invalid(
            unknown[0][:80], "is not a field of a resolve request (it takes clientToken, components)"
        )
    token = request.get("clientToken")
    if token is not None and _valid_token(token) is None:
        raise _invalid("clientToken", f"must be a string of 1 to {CLIENT_TOKEN_MAX_LENGTH} characters")
    components = request.get("components")
    if not isinstance(components, dict) or not components:
        raise _invalid("components", "must be a non-empty object of component name to version requirement")
    if len(components) > MAX_COMPONENTS:
        raise _invalid(
            "components", f"names {len(components)} components; at most {MAX_COMPONENTS} are allowed"
        )
    requirements: dict[str, Requirement] = {}
    for name, text in components.items():
        field = f"components.{name[:140]}"
        if not _NAME.fullmatch(name) or len(name) > COMPONENT_NAME_MAX_LENGTH:
            raise _invalid(
                field,
                f"the name may only hold letters, digits, '-', '_' and '.' ({COMPONENT_NAME_MAX_LENGTH} at most)",
            )
        if not isinstance(text, str):
            raise _invalid(field, "the version requirement must be a string such as '>=1.0.0 <2.0.0' or '*'")
        try:
            requirements[name] = Requirement.parse(text)
        except VersionError as exc:
            raise _invalid(field, str(exc)) from None
    return ResolveRequest(requirements, client_token=token)


def build_accepted(answer: ResolveAccepted) -> bytes:
    """The payload of ``answer``."""
    body: dict[str, Any] = {
        "timestamp": answer.timestamp,
        "components": {
            name: [_candidate(candidate) for candidate in candidates]
            for name, candidates in answer.components.items()
        },
    }
    if answer.client_token is not None:
        body = {"clientToken": answer.client_token, **body}
    return json.dumps(body).encode()


def _candidate(candidate: Candidate) -> dict[str, Any]:
    return {
        "version": candidate.version,
        "recipe": candidate.recipe,
        "artifacts": {uri: _source(source) for uri, source in candidate.artifacts.items()},
    }


def _source(source: ArtifactSource) -> dict[str, Any]:
    body: dict[str, Any] = {"url": source.url}
    if source.size is not None:
        body["size"] = source.size
    body["digest"] = source.digest
    return body


def build_rejected(rejection: ResolveRejection) -> bytes:
    """The payload of ``rejection``."""
    body: dict[str, Any] = {}
    if rejection.client_token is not None:
        body["clientToken"] = rejection.client_token
    if rejection.timestamp is not None:
        body["timestamp"] = rejection.timestamp
    body.update(code=rejection.code, message=rejection.message)
    return json.dumps(body).encode()


def read_reply(topic: str, payload: bytes) -> Reply | None:
    """A reply that arrived on ``topic``, or None when its payload is not a JSON object."""
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    token = body.get("clientToken")
    return Reply(
        client_token=token if isinstance(token, str) else None,
        rejected=topic.endswith(f"/{REJECTED}"),
        body=body,
    )


def rejection_of(reply: Reply) -> ResolveRejection | None:
    """The rejection ``reply`` carries: it came on ``/rejected`` (code ``InternalError`` when it names none)
    or carries a ``code``; None when it is an answer."""
    body = reply.body
    if not reply.rejected and "code" not in body:
        return None
    timestamp = body.get("timestamp")
    return ResolveRejection(
        code=str(body.get("code", INTERNAL_ERROR)),
        message=str(body.get("message")),
        timestamp=timestamp if isinstance(timestamp, int) and not isinstance(timestamp, bool) else None,
        client_token=reply.client_token,
    )


def parse_accepted(body: Mapping[str, Any]) -> dict[str, tuple[Offer, ...]]:
    """The offers of an accepted answer, by component name, in the order listed.

    Raises:
        ResolveAnswerError: naming the field that is wrong.
        RecipeError: an offered recipe is invalid (its message names ``components.<name>[<i>].recipe``).
    """
    components = body.get("components")
    if not isinstance(components, Mapping):
        raise ResolveAnswerError("components: expected an object of component names")
    offers: dict[str, tuple[Offer, ...]] = {}
    for name, versions in components.items():
        if not isinstance(versions, list) or len(versions) > MAX_VERSIONS:
            raise ResolveAnswerError(f"components.{name}: expected a list of at most {MAX_VERSIONS} versions")
        offers[str(name)] = tuple(
            _offer(str(name), value, f"components.{name}[{index}]") for index, value in enumerate(versions)
        )
    return offers


def _offer(name: str, value: Any, where: str) -> Offer:
    if not isinstance(value, Mapping):
        raise ResolveAnswerError(f"{where}: expected an object with version, recipe and artifacts")
    document = value.get("recipe")
    if not isinstance(document, Mapping):
        raise ResolveAnswerError(f"{where}.recipe: expected the recipe as an object")
    recipe = parse_recipe(document, source_name=f"{where}.recipe")
    if recipe.name != name or recipe.version != value.get("version"):
        raise ResolveAnswerError(
            f"{where}: the recipe is {recipe.name} {recipe.version}, "
            f"listed as {name} {value.get('version')!r:.100}"
        )
    artifacts = value.get("artifacts", {})
    if not isinstance(artifacts, Mapping):
        raise ResolveAnswerError(f"{where}.artifacts: expected an object keyed by artifact Uri")
    sources = {str(uri): _artifact(entry, f"{where}.artifacts.{uri}") for uri, entry in artifacts.items()}
    return Offer(recipe=recipe, document=document, artifacts=sources)


def _artifact(value: Any, where: str) -> ArtifactSource:
    if not isinstance(value, Mapping):
        raise ResolveAnswerError(f"{where}: expected an object with url, digest and size")
    url, digest, size = value.get("url"), value.get("digest"), value.get("size")
    if not isinstance(url, str) or not url.startswith("https://"):
        raise ResolveAnswerError(f"{where}.url: expected an https:// URL, got {url!r:.200}")
    try:
        if not isinstance(digest, str) or len(base64.b64decode(digest, validate=True)) != _SHA256_BYTES:
            raise ValueError
    except (ValueError, binascii.Error):
        raise ResolveAnswerError(f"{where}.digest: expected a base64 SHA-256, got {digest!r:.100}") from None
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ResolveAnswerError(f"{where}.size: expected a number of bytes, got {size!r:.100}")
    return ArtifactSource(url=url, digest=digest, size=size)
