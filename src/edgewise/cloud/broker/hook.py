"""Device authorization for a broker the cloud does not manage, asked for over HTTP one client action at a time.

With ``--broker external`` nothing renders an ACL for the broker; a broker that can ask an HTTP service instead
(EMQX 5's HTTP authorizer and authenticator) asks this one. It answers in EMQX's shapes:

- authorize: ``{"clientid", "username", "topic", "action": "publish"|"subscribe", "qos"?, "retain"?}`` ->
  ``{"result": "allow"|"deny"}``;
- authenticate: ``{"clientid", "username", "peerhost", "cert_common_name"?}`` ->
  ``{"result": "allow"|"deny"|"ignore", "is_superuser": false}``.

Both decide with exactly the permissions the managed broker's ACL would hold for the user name
(:func:`gateway_permissions` is :func:`~.permissions.all_device_permissions` for one name), with the ACL's
meaning (see :mod:`.acl`): a device may publish to a topic its publish filters match; it may subscribe to a
filter that one of its read filters (each subscribe filter met with each receive filter) covers whole, since an
HTTP-authorizing broker checks the subscription and never the delivery; a deny filter refuses any publish it
matches and any subscription that could deliver one of its topics. A name that is unknown, reserved, claimed
twice or without an ACTIVE certificate is denied everything: the cloud is authoritative for devices, so it
never answers ``ignore`` for one.

Answers per user name are cached for :data:`DEFAULT_CACHE_TTL` seconds, and the whole cache is forgotten after
each API write that can change authorization (the same writes that re-sync the managed broker), so a change made
through the API applies at once and one it did not make (fleet provisioning, another process) within the TTL.

The broker proves itself with a secret of its own, not an API token: ``cloud up --broker external`` writes it
to ``DIR/broker/hook-token`` (0600) and the broker sends it as ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgewise.cloud.broker.acl import DevicePermissions, intersect_filters
from edgewise.cloud.broker.permissions import device_permissions, to_device_permissions
from edgewise.cloud.errors import AuthenticationError, CloudError
from edgewise.cloud.identity import (
    Certificate,
    CertificateStatus,
    Policy,
    PolicyCertificateAttachment,
    ThingPrincipal,
    parse_policy,
    render_for_thing,
)
from edgewise.cloud.registry import Thing, rules
from edgewise.errors import EdgewiseError
from edgewise.names import THING_NAME
from edgewise.topics import TopicError, filter_covers, filter_matches, validate_filter, validate_topic

#: Where ``cloud up --broker external`` keeps the hook's secret, under the data directory.
HOOK_TOKEN_FILE = Path("broker") / "hook-token"
#: The largest request body the hook reads; EMQX's templates send a few hundred bytes.
HOOK_BODY_MAX_BYTES = 4096
#: Seconds an answer for one user name is reused (unless an API write forgets it sooner).
DEFAULT_CACHE_TTL = 5.0
#: User names whose answers are kept at most; the oldest go first.
DEFAULT_CACHE_ENTRIES = 100_000

HookAction = Literal["publish", "subscribe"]
AuthenticationResult = Literal["allow", "deny", "ignore"]
Clock = Callable[[], float]


class BrokerHookRequestError(CloudError):
    """A hook request whose body cannot be read; the message names the field (answered 400)."""

    code: ClassVar[str] = "invalid_hook_request"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"Field {field!r} is invalid: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class AuthorizationRequest:
    """One client action the broker asks about."""

    clientid: str
    username: str
    topic: str
    action: HookAction
    qos: int | None = None
    retain: bool | None = None


@dataclass(frozen=True)
class AuthenticationRequest:
    """One connection the broker asks about; ``cert_common_name`` is None without a client certificate."""

    clientid: str
    username: str
    peerhost: str
    cert_common_name: str | None = None


def _object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BrokerHookRequestError("body", f"is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BrokerHookRequestError("body", f"must be a JSON object, not {type(document).__name__}")
    return document


def _text(document: dict[str, Any], field: str, *, required: bool = True) -> str | None:
    value = document.get(field)
    if value is None:
        if required:
            raise BrokerHookRequestError(field, "is missing")
        return None
    if not isinstance(value, str):
        raise BrokerHookRequestError(field, f"must be a string, not {type(value).__name__}")
    return value


def _required_text(document: dict[str, Any], field: str) -> str:
    value = _text(document, field)
    assert value is not None
    return value


def _qos(value: Any) -> int | None:
    # EMQX fills "${qos}" into a JSON string template, so "1" comes as often as 1.
    if value is None:
        return None
    if isinstance(value, str) and value in ("0", "1", "2"):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2:
        return value
    raise BrokerHookRequestError("qos", f"must be 0, 1 or 2, not {value!r}")


def _retain(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    raise BrokerHookRequestError("retain", f"must be true or false, not {value!r}")


def parse_authorization_request(body: bytes) -> AuthorizationRequest:
    """The request in an authorize call's JSON body; fields besides ours are ignored.

    Raises:
        BrokerHookRequestError: the body is not a JSON object, or a field is missing or of the wrong type.
    """
    document = _object(body)
    clientid = _required_text(document, "clientid")
    username = _required_text(document, "username")
    topic = _required_text(document, "topic")
    action = _required_text(document, "action")
    if action not in ("publish", "subscribe"):
        raise BrokerHookRequestError("action", f"must be 'publish' or 'subscribe', not {action!r}")
    return AuthorizationRequest(
        clientid,
        username,
        topic,
        "publish" if action == "publish" else "subscribe",
        qos=_qos(document.get("qos")),
        retain=_retain(document.get("retain")),
    )


def parse_authentication_request(body: bytes) -> AuthenticationRequest:
    """The request in an authenticate call's JSON body; an empty ``cert_common_name`` counts as none.

    Raises:
        BrokerHookRequestError: the body is not a JSON object, or a field is missing or of the wrong type.
    """
    document = _object(body)
    return AuthenticationRequest(
        _required_text(document, "clientid"),
        _required_text(document, "username"),
        _required_text(document, "peerhost"),
        _text(document, "cert_common_name", required=False) or None,
    )


def gateway_permissions(session: Session, name: str) -> DevicePermissions | None:
    """What the managed broker's ACL would grant user ``name``, or None when it would grant it nothing.

    The same sources as :func:`~.permissions.all_device_permissions`, for one name: the thing called ``name``;
    each thing with an ACTIVE certificate whose CN is ``name`` (provisioning by claim), under that CN; an ACTIVE
    certificate with that CN attached to no thing. A source that fails to render gives nothing; a reserved name
    or one that more than one source grants gets nothing.
    """
    if not THING_NAME.fullmatch(name) or rules.is_reserved(name):
        return None
    grants: list[DevicePermissions] = []
    if session.scalar(sa.select(Thing.id).where(Thing.name == name)) is not None:
        grants += _rendered(device_permissions, session, name)
    holders = session.execute(
        sa.select(Thing.name)
        .join(ThingPrincipal, ThingPrincipal.thing_id == Thing.id)
        .join(Certificate, Certificate.id == ThingPrincipal.certificate_id)
        .where(
            Certificate.common_name == name,
            Certificate.status == CertificateStatus.ACTIVE,
            Thing.name != name,
        )
    )
    for (holder,) in list(holders):
        grants += [
            replace(found, thing_name=name) for found in _rendered(device_permissions, session, holder)
        ]
    unattached = session.scalars(
        sa.select(Certificate.id).where(
            Certificate.common_name == name,
            Certificate.status == CertificateStatus.ACTIVE,
            Certificate.id.not_in(sa.select(ThingPrincipal.certificate_id)),
        )
    )
    for certificate_id in list(unattached):
        grants += _rendered(_certificate_permissions, session, certificate_id, name)
    return grants[0] if len(grants) == 1 else None


def _rendered(render: Callable[..., DevicePermissions | None], *args: Any) -> list[DevicePermissions]:
    try:
        found = render(*args)
    except EdgewiseError:
        return []
    return [] if found is None else [found]


def _certificate_permissions(
    session: Session, certificate_id: int, common_name: str
) -> DevicePermissions | None:
    documents = session.scalars(
        sa.select(Policy.document)
        .join(PolicyCertificateAttachment, PolicyCertificateAttachment.policy_id == Policy.id)
        .where(PolicyCertificateAttachment.certificate_id == certificate_id)
        .order_by(Policy.name)
    )
    rendered = render_for_thing([parse_policy(document) for document in documents], common_name)
    return to_device_permissions(rendered) if rendered.can_connect else None


def _covers(read_filter: str, requested: str) -> bool:
    # A filter starting with a wildcard never matches a '$' topic, which filter_covers does not know.
    if requested.startswith("$") and read_filter[:1] in ("+", "#"):
        return False
    return filter_covers(read_filter, requested)


def may_publish(permissions: DevicePermissions, topic: str) -> bool:
    """Whether the ACL lets ``permissions``' device publish to ``topic`` (never to a filter with wildcards)."""
    try:
        validate_topic(topic)
    except TopicError:
        return False
    if any(filter_matches(denied, topic) for denied in permissions.deny):
        return False
    return any(filter_matches(allowed, topic) for allowed in permissions.publish)


def may_subscribe(permissions: DevicePermissions, topic_filter: str) -> bool:
    """Whether every message ``topic_filter`` could deliver is one the ACL lets the device receive."""
    try:
        validate_filter(topic_filter)
    except TopicError:
        return False
    if any(intersect_filters(denied, topic_filter) is not None for denied in permissions.deny):
        return False
    return any(
        both is not None and _covers(both, topic_filter)
        for subscribable in permissions.subscribe
        for receivable in permissions.receive
        for both in (intersect_filters(subscribable, receivable),)
    )


def decide(permissions: DevicePermissions | None, request: AuthorizationRequest) -> bool:
    """The answer to ``request`` for a user with ``permissions`` (None: a user the ACL does not know)."""
    if permissions is None:
        return False
    if request.action == "publish":
        return may_publish(permissions, request.topic)
    return may_subscribe(permissions, request.topic)


def ensure_hook_token(data_dir: Path) -> Path:
    """The hook token file of ``data_dir``, made (0600) with a new random secret if there is none. Blocks.

    The secret stays across restarts: the broker's configuration carries it.
    """
    path = data_dir / HOOK_TOKEN_FILE
    if path.exists():
        return path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(secrets.token_urlsafe(32) + "\n")
    partial.replace(path)
    return path


def read_hook_token(data_dir: Path) -> str | None:
    """The hook token of ``data_dir``, or None where ``cloud up`` made none (a managed broker). Blocks."""
    try:
        token = (data_dir / HOOK_TOKEN_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return token or None


@dataclass(frozen=True)
class HookStatistics:
    """Counters of one :class:`BrokerHook`."""

    #: Answers taken from the cache, and those that read the store.
    hits: int
    misses: int
    #: User names cached now.
    entries: int


class BrokerHook:
    """Answers an external broker's authorization and authentication calls from the store, with a cache.

    Usage::

        hook = BrokerHook(sessions, token=read_hook_token(data_dir))
        hook.check_token(request.headers.get("authorization"))
        allowed = await hook.authorize(parse_authorization_request(body))
        hook.forget()           # after a write that may change authorization

    The cache is used from the event loop only; the store is read in a worker thread.
    """

    def __init__(
        self,
        session_factory: Callable[[], Session],
        *,
        token: str | None,
        ttl: float = DEFAULT_CACHE_TTL,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
        clock: Clock = time.monotonic,
    ) -> None:
        self._sessions = session_factory
        self._token = token
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, DevicePermissions | None]] = OrderedDict()
        #: Moves on at each forget(), so that a lookup begun before it does not store an answer it outdated.
        self._generation = 0
        self._hits = 0
        self._misses = 0

    def check_token(self, authorization: str | None) -> None:
        """Refuse a call that does not carry ``Authorization: Bearer <the hook token>``.

        Raises:
            AuthenticationError: no hook token is configured, or the header does not carry it.
        """
        if self._token is None:
            raise AuthenticationError(
                "The broker hook is off: it serves an external broker, and `edgewise cloud up --broker external`"
                " writes its token to DATA/broker/hook-token"
            )
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), self._token.encode()
        ):
            raise AuthenticationError(
                "The request does not carry the broker hook's token as 'Authorization: Bearer'"
            )

    def forget(self) -> None:
        """Drop every cached answer: authorization may have changed."""
        self._cache.clear()
        self._generation += 1

    def statistics(self) -> HookStatistics:
        """The hook's counters."""
        return HookStatistics(self._hits, self._misses, len(self._cache))

    async def authorize(self, request: AuthorizationRequest) -> bool:
        """Whether the broker may let ``request`` through."""
        return decide(await self.permissions(request.username), request)

    async def authenticate(self, request: AuthenticationRequest) -> AuthenticationResult:
        """``ignore`` for a client without a certificate (the next authenticator's, e.g. the workers' password);
        ``allow`` for a certificate whose CN the ACL knows, when the user name and client id are that CN."""
        name = request.cert_common_name
        if name is None:
            return "ignore"
        if request.username != name or request.clientid != name:
            return "deny"
        return "allow" if await self.permissions(name) is not None else "deny"

    async def permissions(self, username: str) -> DevicePermissions | None:
        """What the ACL grants ``username``, from the cache while fresh."""
        now = self._clock()
        cached = self._cache.get(username)
        if cached is not None and cached[0] > now:
            self._hits += 1
            return cached[1]
        self._misses += 1
        generation = self._generation
        found = await asyncio.to_thread(self._lookup, username)
        if generation == self._generation:
            self._cache[username] = (now + self._ttl, found)
            self._cache.move_to_end(username)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return found

    def _lookup(self, username: str) -> DevicePermissions | None:
        with self._sessions() as session:
            return gateway_permissions(session, username)
