"""Recipe resolution over MQTT (docs/device-protocol.md, "Component recipes and artifacts").

A device publishes ``{"clientToken", "components": {name: version requirement}}`` on
``$aws/things/<thing>/edgewise/components/resolve``; the worker answers on ``.../resolve/accepted`` with, for
each name, the published versions that satisfy the requirement (newest first, at most 20), each with its
stored recipe and a freshly signed download URL per artifact ``Uri``, or on ``.../resolve/rejected`` with
``{"clientToken", "timestamp", "code", "message"}``. The thing is the one the topic names: the broker's ACL
lets a device publish only under its own ``$aws/things/<thing>/``, and the replies go back there.

The subscription is a plain one, not a shared subscription: Mosquitto 2.0 does not deliver ``$``-topics
to shared subscriptions. With several cloud processes each answers every request; the replies are alike (the
URLs are signed with the same key), and a device takes the first one for its ``clientToken``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker.connection import BrokerConnection
from edgewise.cloud.components import service
from edgewise.cloud.components.models import ComponentVersion
from edgewise.cloud.dataplane.signing import UrlSigner
from edgewise.cloud.workerlink import MessageTooLargeError, WorkerLink
from edgewise.versions import Requirement, VersionError

logger = logging.getLogger(__name__)

RESOLVE_FILTER = "$aws/things/+/edgewise/components/resolve"
MAX_PAYLOAD = 64 * 1024
MAX_COMPONENTS = 100
CLIENT_TOKEN_MAX_LENGTH = 64
_CLIENT_ID = "edgewise-components"
_NAME = re.compile(service.NAME_PATTERN)


class ResolveRejected(Exception):
    """A request answered on ``/rejected``; ``code`` is ``InvalidRequest`` or ``InternalError``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ResolveRequest:
    """A parsed resolve request."""

    client_token: str | None
    requirements: dict[str, Requirement]


def thing_of(topic: str) -> str | None:
    """The thing a resolve request topic names, or None when the topic is not one."""
    parts = topic.split("/")
    if (
        len(parts) == 6
        and parts[:2] == ["$aws", "things"]
        and parts[3:] == ["edgewise", "components", "resolve"]
    ):
        return parts[2] or None
    return None


def _invalid(field: str, problem: str) -> ResolveRejected:
    return ResolveRejected("InvalidRequest", f"Field {field!r} is invalid: {problem}")


def client_token_of(payload: bytes) -> str | None:
    """The request's ``clientToken`` when it has a valid one, to echo even in a rejection."""
    try:
        request = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    token = request.get("clientToken") if isinstance(request, dict) else None
    return token if isinstance(token, str) and 0 < len(token) <= CLIENT_TOKEN_MAX_LENGTH else None


def parse_request(payload: bytes) -> ResolveRequest:
    """Parse and check a resolve request.

    Raises:
        ResolveRejected: ``InvalidRequest``, the message naming the field and the problem.
    """
    if len(payload) > MAX_PAYLOAD:
        raise ResolveRejected("InvalidRequest", f"The payload is larger than {MAX_PAYLOAD} bytes")
    try:
        request = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ResolveRejected("InvalidRequest", f"The payload is not JSON: {exc}") from None
    if not isinstance(request, dict):
        raise ResolveRejected("InvalidRequest", "The payload must be a JSON object")
    unknown = sorted(set(request) - {"clientToken", "components"})
    if unknown:
        raise _invalid(
            unknown[0][:80], "is not a field of a resolve request (it takes clientToken, components)"
        )
    token = request.get("clientToken")
    if token is not None and not (isinstance(token, str) and 0 < len(token) <= CLIENT_TOKEN_MAX_LENGTH):
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
        if not _NAME.fullmatch(name) or len(name) > service.NAME_MAX_LENGTH:
            raise _invalid(
                field,
                f"the name may only hold letters, digits, '-', '_' and '.' ({service.NAME_MAX_LENGTH} at most)",
            )
        if not isinstance(text, str):
            raise _invalid(field, "the version requirement must be a string such as '>=1.0.0 <2.0.0' or '*'")
        try:
            requirements[name] = Requirement.parse(text)
        except VersionError as exc:
            raise _invalid(field, str(exc)) from None
    return ResolveRequest(token, requirements)


class ResolveWorker:
    """Answers resolve requests until closed, signing artifact URLs with ``signer``."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        signer: UrlSigner,
        connection: BrokerConnection,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._signer = signer
        self._clock = clock
        self._link = WorkerLink(
            connection,
            client_id=_CLIENT_ID,
            filters=[RESOLVE_FILTER],
            on_message=self._answer,
        )

    async def start(self) -> None:
        """Connect and subscribe.

        Raises:
            ConnectionError: the broker refused the connection or the subscription, or did not answer.
        """
        await self._link.start()

    async def close(self) -> None:
        """Disconnect; requests being answered are abandoned."""
        await self._link.close()

    async def _answer(self, topic: str, payload: bytes) -> None:
        thing = thing_of(topic)
        if thing is None:
            logger.warning("resolve-request-ignored topic=%s: not a resolve topic", topic)
            return
        try:
            request = parse_request(payload)
            reply = await asyncio.to_thread(self._resolve, request)
            outcome = "accepted"
        except ResolveRejected as exc:
            logger.info("resolve-rejected thing=%s code=%s: %s", thing, exc.code, exc)
            reply, outcome = self._rejection(payload, exc), "rejected"
        except Exception:
            logger.exception("resolve-failed thing=%s", thing)
            failure = ResolveRejected("InternalError", "The request failed; see the cloud log")
            reply, outcome = self._rejection(payload, failure), "rejected"
        try:
            self._link.publish(f"{topic}/{outcome}", json.dumps(reply))
        except MessageTooLargeError as exc:
            logger.warning("resolve-reply-too-large thing=%s: %s", thing, exc)
            too_large = ResolveRejected("InvalidRequest", f"{exc}; ask for fewer components at a time")
            self._link.publish(f"{topic}/rejected", json.dumps(self._rejection(payload, too_large)))

    def _rejection(self, payload: bytes, exc: ResolveRejected) -> dict[str, Any]:
        reply: dict[str, Any] = {"timestamp": int(self._clock()), "code": exc.code, "message": str(exc)}
        token = client_token_of(payload)
        if token is not None:
            reply = {"clientToken": token, **reply}
        return reply

    def _resolve(self, request: ResolveRequest) -> dict[str, Any]:
        """The accepted reply. Blocks (database)."""
        with self._sessions() as session:
            found = service.resolve(session, request.requirements)
            components = {
                name: [self._candidate(version) for version in versions] for name, versions in found.items()
            }
        reply: dict[str, Any] = {"timestamp": int(self._clock()), "components": components}
        if request.client_token is not None:
            reply = {"clientToken": request.client_token, **reply}
        return reply

    def _candidate(self, version: ComponentVersion) -> dict[str, Any]:
        return {
            "version": version.version,
            "recipe": service.recipe_document(version),
            "artifacts": {
                artifact.uri: {
                    "url": self._signer.sign(artifact.sha256),
                    "size": artifact.size,
                    "digest": service.sha256_to_digest(artifact.sha256),
                }
                for artifact in version.artifacts
            },
        }
