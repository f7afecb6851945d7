"""The cloud's side of component resolution (docs/device-protocol.md, "Component recipes and artifacts"; the
messages are :mod:`edgewise.protocol.resolve`).

For each name a device asks for, the worker answers with the published versions that satisfy the requirement
(newest first, at most 20), each with its stored recipe and a freshly signed download URL per artifact ``Uri``,
or rejects the request naming the field. The thing is the one the topic names: the broker's ACL lets a device
publish only under its own ``$aws/things/<thing>/``, and the replies go back there.

Requests are answered in batches (:mod:`edgewise.cloud.batches`): a fleet deployment has every device ask for
the same components at once, and a batch reads what changed of them in one query.

The subscription is a plain one, not a shared subscription: Mosquitto 2.0 does not deliver ``$``-topics
to shared subscriptions. With several cloud processes every process subscribes and answers only the things its
``partition`` owns (:mod:`edgewise.cloud.partition`), so each request is answered once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial

from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.batches import RequestBatches, outcome_of
from edgewise.cloud.broker import BrokerConnection
from edgewise.cloud.components import service
from edgewise.cloud.components.downloads import ArtifactUrlSigner
from edgewise.cloud.components.published import PublishedVersion, PublishedVersions
from edgewise.cloud.partition import Partition
from edgewise.cloud.workerlink import PacketTooLargeError, WorkerLink
from edgewise.protocol import resolve

logger = logging.getLogger(__name__)

_CLIENT_ID = "edgewise-components"
#: The most requests one batch answers.
BATCH_MAX = 200


class ResolveWorker:
    """Answers resolve requests until closed, signing artifact URLs with ``signer``."""

    #: What the cloud's logs call this worker.
    name = "resolve"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        signer: ArtifactUrlSigner,
        connection: BrokerConnection,
        *,
        clock: Callable[[], float] = time.time,
        partition: Partition | None = None,
    ) -> None:
        self._sessions = sessions
        self._signer = signer
        self._clock = clock
        self._published = PublishedVersions()
        self._batches = RequestBatches[resolve.ResolveRequest, bytes](
            self._resolve, most=BATCH_MAX, name="resolve"
        )
        self._link = WorkerLink(
            connection,
            client_id=_CLIENT_ID,
            filters=[resolve.REQUEST_FILTER],
            on_message=self._answer,
            partition=partition,
        )

    async def start(self) -> None:
        """Connect and subscribe.

        Raises:
            ConnectionError: the broker refused the connection or the subscription, or did not answer.
        """
        await self._link.start()

    async def close(self) -> None:
        """Disconnect; requests being answered are abandoned."""
        await self._batches.close()
        await self._link.close()

    async def _answer(self, topic: str, payload: bytes) -> None:
        thing = resolve.thing_of(topic)
        if thing is None:
            logger.warning("resolve-request-ignored topic=%s: not a resolve topic", topic)
            return
        reply: bytes
        outcome: resolve.Outcome
        try:
            request = resolve.parse_request(payload)
            reply = await self._batches.answered(request)
            outcome = resolve.ACCEPTED
        except resolve.ResolveRequestError as exc:
            logger.info("resolve-rejected thing=%s code=%s: %s", thing, exc.code, exc)
            reply, outcome = self._rejection(payload, exc.code, str(exc)), resolve.REJECTED
        except Exception:
            logger.exception("resolve-failed thing=%s", thing)
            failure = "The request failed; see the cloud log"
            reply, outcome = self._rejection(payload, resolve.INTERNAL_ERROR, failure), resolve.REJECTED
        try:
            self._link.publish(resolve.reply_topic(thing, outcome), reply)
        except PacketTooLargeError as exc:
            logger.warning("resolve-reply-too-large thing=%s: %s", thing, exc)
            too_large = f"{exc}; ask for fewer components at a time"
            self._link.publish(
                resolve.reply_topic(thing, resolve.REJECTED),
                self._rejection(payload, resolve.INVALID_REQUEST, too_large),
            )

    def _rejection(self, payload: bytes, code: resolve.RejectionCode, message: str) -> bytes:
        rejection = resolve.ResolveRejection(
            code=code,
            message=message,
            timestamp=int(self._clock()),
            client_token=resolve.client_token_of(payload),
        )
        return resolve.build_rejected(rejection)

    def _resolve(self, requests: Sequence[resolve.ResolveRequest]) -> list[bytes | Exception]:
        """The accepted reply to each request, or the failure to answer it with. Blocks (database)."""
        with self._sessions() as session:
            found = self._published.matching(session, [request.requirements for request in requests])
        return [
            outcome_of(partial(self._accepted, request, versions))
            for request, versions in zip(requests, found, strict=True)
        ]

    def _accepted(self, request: resolve.ResolveRequest, found: dict[str, list[PublishedVersion]]) -> bytes:
        components = {
            name: [self._candidate(version) for version in versions] for name, versions in found.items()
        }
        answer = resolve.ResolveAccepted(
            timestamp=int(self._clock()), components=components, client_token=request.client_token
        )
        return resolve.build_accepted(answer)

    def _candidate(self, version: PublishedVersion) -> resolve.Candidate:
        return resolve.Candidate(
            version=version.version,
            recipe=version.recipe,
            artifacts={
                artifact.uri: resolve.ArtifactSource(
                    url=self._signer.sign(artifact.sha256),
                    size=artifact.size,
                    digest=service.sha256_to_digest(artifact.sha256),
                )
                for artifact in version.artifacts
            },
        )
