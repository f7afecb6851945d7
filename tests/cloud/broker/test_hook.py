"""The authorization hook an external broker calls (EMQX 5's HTTP authorizer and authenticator shapes), over HTTP
against the API app on a real SQLite store: it answers with the permissions the managed broker's ACL renders,
forgets them when the API changes authorization, and refuses callers without the hook token, large bodies and
unreadable fields. Then the rendered ACL and CRL for a Mosquitto of one's own, from the API and the CLI."""

from __future__ import annotations

import json
import stat
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from cryptography import x509
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session
from tests.support.api_server import served_api
from typer.testing import CliRunner

from edgewise.cli import broker as broker_cli
from edgewise.cli.main import app as cli_app
from edgewise.cloud.app import FirstStart, create_app, initialize
from edgewise.cloud.broker import DevicePermissions, all_device_permissions, render_acl
from edgewise.cloud.broker.hook import (
    HOOK_TOKEN_FILE,
    AuthorizationRequest,
    BrokerHook,
    BrokerHookRequestError,
    ensure_hook_token,
    gateway_permissions,
    parse_authentication_request,
    parse_authorization_request,
    read_hook_token,
)
from edgewise.cloud.identity import DEFAULT_DEVICE_POLICY_NAME, Certificate, ThingPrincipal
from edgewise.cloud.preparation import ServerOptions, prepare
from edgewise.cloud.registry import Thing


@dataclass
class Cloud:
    first: FirstStart
    app: FastAPI
    hook_token: str
    #: Certificate ids by the thing (or CN) they were issued for.
    certificates: dict[str, str]

    def client(self, token: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        transport = httpx.ASGITransport(app=self.app)
        return httpx.AsyncClient(transport=transport, base_url="http://cloud/api/v1", headers=headers)

    def session(self) -> Session:
        return self.app.state.services.sessions()  # type: ignore[no-any-return]


async def _issue(admin: httpx.AsyncClient, thing_name: str) -> str:
    """A certificate for (and attached to) ``thing_name``, with the default device policy."""
    created = await admin.post("/certificates", json={"generateKeyPair": True, "thingName": thing_name})
    assert created.status_code == 201, created.text
    certificate_id: str = created.json()["certificateId"]
    attached = await admin.put(
        f"/policies/{DEFAULT_DEVICE_POLICY_NAME}/targets/certificates/{certificate_id}"
    )
    assert attached.status_code == 204, attached.text
    return certificate_id


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cloud(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cloud]:
    """A cloud whose store holds: pump-1 and pump-2 (default policy), idle (a thing without a certificate), loose
    (a certificate with the default policy and no thing), twin (a thing and a loose certificate with its name:
    claimed twice), and pump-1 also known by alias-1 (a certificate issued before its thing existed)."""
    data_dir = tmp_path_factory.mktemp("hook") / "cloud"
    first = initialize(data_dir)
    ensure_hook_token(data_dir)
    token = read_hook_token(data_dir)
    assert token is not None
    assert first.admin_token is not None
    application = create_app(first.settings)
    world = Cloud(first, application, token, {})
    async with world.client(first.admin_token) as admin:
        for name in ("pump-1", "pump-2", "idle", "twin", "fresh"):
            assert (await admin.post("/things", json={"thingName": name})).status_code == 201
        for name in ("pump-1", "pump-2", "twin", "fresh"):
            world.certificates[name] = await _issue(admin, name)
        twin_loose = world.certificates["twin-loose"] = await _issue(admin, "twin")
        assert (await admin.delete(f"/things/twin/principals/{twin_loose}")).status_code == 204
        for name in ("loose", "alias-1"):
            # Issued for a thing that is gone again: a certificate attached to no thing, with that CN.
            assert (await admin.post("/things", json={"thingName": name})).status_code == 201
            world.certificates[name] = await _issue(admin, name)
            assert (await admin.delete(f"/things/{name}")).status_code == 204
    with world.session() as session:
        # The API attaches a certificate only to the thing it was issued for; provisioning by claim does not.
        thing = session.query(Thing).filter_by(name="pump-1").one()
        certificate = session.query(Certificate).filter_by(certificate_id=world.certificates["alias-1"]).one()
        session.add(ThingPrincipal(thing_id=thing.id, certificate_id=certificate.id))
        session.commit()
    try:
        yield world
    finally:
        application.state.services.engine.dispose()


async def ask(cloud: Cloud, username: str, action: str, topic: str, **extra: Any) -> str:
    body = {"clientid": username, "username": username, "topic": topic, "action": action, **extra}
    async with cloud.client(cloud.hook_token) as hook:
        response = await hook.post("/broker/authorize", json=body)
    assert response.status_code == 200, response.text
    result: str = response.json()["result"]
    return result


@pytest.mark.parametrize(
    ("username", "action", "topic", "expected"),
    [
        ("pump-1", "publish", "dt/pump-1/temperature", "allow"),
        ("pump-1", "publish", "$aws/things/pump-1/shadow/update", "allow"),
        ("pump-1", "publish", "dt/pump-2/temperature", "deny"),
        ("pump-1", "publish", "$aws/things/pump-2/shadow/update", "deny"),
        ("pump-1", "publish", "dt/pump-1/+", "deny"),
        ("pump-1", "publish", "dt/pump-1/#", "deny"),
        ("pump-1", "subscribe", "$aws/things/pump-1/shadow/#", "allow"),
        ("pump-1", "subscribe", "dt/pump-1/+/alarm", "allow"),
        ("pump-1", "subscribe", "dt/pump-2/#", "deny"),
        ("pump-1", "subscribe", "$aws/things/+/shadow/#", "deny"),
        ("pump-1", "subscribe", "#", "deny"),
        ("pump-1", "subscribe", "dt/pump-1/a+", "deny"),
        # The default policy's "dt/<thing>/*" does not grant "dt/<thing>" itself: the ACL denies it, so a
        # subscription that could deliver it is refused.
        ("pump-1", "subscribe", "dt/pump-1/#", "deny"),
        # A certificate made before its thing existed acts with the thing's permissions under its own CN.
        ("alias-1", "publish", "dt/pump-1/x", "allow"),
        ("alias-1", "publish", "dt/alias-1/x", "deny"),
        ("loose", "subscribe", "dt/loose/+", "allow"),
        ("twin", "publish", "dt/twin/x", "deny"),
        ("idle", "publish", "dt/idle/x", "deny"),
        ("nobody", "publish", "dt/nobody/x", "deny"),
        ("edgewise-jobs", "subscribe", "$aws/things/+/jobs/#", "deny"),
    ],
)
async def test_a_device_may_use_its_own_topics_and_nothing_else(
    cloud: Cloud, username: str, action: str, topic: str, expected: str
) -> None:
    assert await ask(cloud, username, action, topic, qos="1", retain="false") == expected


async def test_a_revoked_certificate_is_denied_as_soon_as_the_api_revokes_it(cloud: Cloud) -> None:
    assert await ask(cloud, "fresh", "publish", "dt/fresh/x") == "allow"
    hook: BrokerHook = cloud.app.state.broker_hook
    cached = hook.statistics().hits
    assert await ask(cloud, "fresh", "publish", "dt/fresh/y") == "allow"
    assert hook.statistics().hits == cached + 1

    async with cloud.client(cloud.first.admin_token) as admin:
        certificate_id = cloud.certificates["fresh"]
        revoked = await admin.patch(f"/certificates/{certificate_id}", json={"status": "REVOKED"})
        assert revoked.status_code == 200, revoked.text

    assert await ask(cloud, "fresh", "publish", "dt/fresh/x") == "deny"
    assert await ask(cloud, "fresh", "subscribe", "dt/fresh/#") == "deny"


async def test_answers_are_kept_for_the_ttl_then_read_again(cloud: Cloud) -> None:
    now = [100.0]
    hook = BrokerHook(cloud.app.state.services.sessions, token="t", ttl=5.0, clock=lambda: now[0])
    request = AuthorizationRequest("pump-2", "pump-2", "dt/pump-2/x", "publish")

    assert await hook.authorize(request)
    now[0] += 4.9
    assert await hook.authorize(request)
    assert (hook.statistics().hits, hook.statistics().misses) == (1, 1)
    now[0] += 0.2
    assert await hook.authorize(request)
    assert (hook.statistics().hits, hook.statistics().misses) == (1, 2)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "clientid": "pump-1",
                "username": "pump-1",
                "peerhost": "10.0.0.7",
                "cert_common_name": "pump-1",
            },
            "allow",
        ),
        (
            {
                "clientid": "alias-1",
                "username": "alias-1",
                "peerhost": "10.0.0.7",
                "cert_common_name": "alias-1",
            },
            "allow",
        ),
        (
            {
                "clientid": "pump-2",
                "username": "pump-1",
                "peerhost": "10.0.0.7",
                "cert_common_name": "pump-1",
            },
            "deny",
        ),
        (
            {
                "clientid": "pump-1",
                "username": "pump-2",
                "peerhost": "10.0.0.7",
                "cert_common_name": "pump-1",
            },
            "deny",
        ),
        (
            {"clientid": "idle", "username": "idle", "peerhost": "10.0.0.7", "cert_common_name": "idle"},
            "deny",
        ),
        (
            {"clientid": "twin", "username": "twin", "peerhost": "10.0.0.7", "cert_common_name": "twin"},
            "deny",
        ),
        ({"clientid": "edgewise-cloud", "username": "edgewise-cloud", "peerhost": "10.0.0.2"}, "ignore"),
    ],
)
async def test_authentication_allows_a_known_certificate_with_its_own_name(
    cloud: Cloud, body: dict[str, str], expected: str
) -> None:
    async with cloud.client(cloud.hook_token) as hook:
        response = await hook.post("/broker/authenticate", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"result": expected, "is_superuser": False}


@pytest.mark.parametrize("path", ["/broker/authorize", "/broker/authenticate"])
async def test_the_hook_needs_its_own_token(cloud: Cloud, path: str) -> None:
    body = {"clientid": "pump-1", "username": "pump-1", "topic": "dt/pump-1/x", "action": "publish"}
    for token in (None, "wrong", cloud.first.admin_token):
        async with cloud.client(token) as caller:
            response = await caller.post(path, json=body | {"peerhost": "10.0.0.7"})
        assert response.status_code == 401, (token, response.text)
        assert response.json()["code"] == "unauthenticated"


async def test_a_cloud_without_a_hook_token_refuses_every_call(cloud: Cloud) -> None:
    # What create_app makes where `cloud up` wrote no hook token (a managed broker).
    serving: BrokerHook = cloud.app.state.broker_hook
    cloud.app.state.broker_hook = BrokerHook(cloud.app.state.services.sessions, token=None)
    try:
        async with cloud.client(cloud.hook_token) as hook:
            body = {"clientid": "pump-1", "username": "pump-1", "topic": "dt/pump-1/x", "action": "publish"}
            response = await hook.post("/broker/authorize", json=body)
    finally:
        cloud.app.state.broker_hook = serving
    assert response.status_code == 401
    assert "--broker external" in response.json()["message"]


async def test_a_body_over_4_kib_is_refused_before_it_is_read(cloud: Cloud) -> None:
    body = {
        "clientid": "pump-1",
        "username": "pump-1",
        "topic": "dt/pump-1/" + "x" * 4096,
        "action": "publish",
    }
    async with cloud.client(cloud.hook_token) as hook:
        response = await hook.post("/broker/authorize", json=body)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"{not json", "body"),
        (b"[]", "body"),
        (json.dumps({"username": "a", "topic": "t", "action": "publish"}).encode(), "clientid"),
        (json.dumps({"clientid": "a", "topic": "t", "action": "publish"}).encode(), "username"),
        (json.dumps({"clientid": "a", "username": "a", "action": "publish"}).encode(), "topic"),
        (json.dumps({"clientid": "a", "username": "a", "topic": "t"}).encode(), "action"),
        (json.dumps({"clientid": "a", "username": "a", "topic": "t", "action": "all"}).encode(), "action"),
        (
            json.dumps({"clientid": "a", "username": 7, "topic": "t", "action": "publish"}).encode(),
            "username",
        ),
        (
            json.dumps(
                {"clientid": "a", "username": "a", "topic": "t", "action": "publish", "qos": 3}
            ).encode(),
            "qos",
        ),
        (
            json.dumps(
                {"clientid": "a", "username": "a", "topic": "t", "action": "publish", "retain": "1"}
            ).encode(),
            "retain",
        ),
    ],
)
async def test_an_unreadable_request_is_a_400_naming_the_field(
    cloud: Cloud, content: bytes, field: str
) -> None:
    async with cloud.client(cloud.hook_token) as hook:
        response = await hook.post(
            "/broker/authorize", content=content, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_hook_request"
    assert f"Field {field!r}" in response.json()["message"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
_BODY_FIELDS = {
    "body",
    "clientid",
    "username",
    "topic",
    "action",
    "qos",
    "retain",
    "peerhost",
    "cert_common_name",
}
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "clientid": _JSON | st.text(max_size=20),
        "username": _JSON | st.text(max_size=20),
        "topic": _JSON | st.text(max_size=20),
        "peerhost": _JSON | st.text(max_size=20),
        "cert_common_name": _JSON | st.text(max_size=20),
        "action": _JSON | st.sampled_from(["publish", "subscribe"]),
        "qos": _JSON | st.sampled_from([0, 1, 2, "0", "2"]),
        "retain": _JSON | st.sampled_from([True, "false"]),
    },
)


@settings(max_examples=100, deadline=None)
@given(
    body=st.binary(max_size=64)
    | _JSON.map(lambda value: json.dumps(value).encode())
    | _FIELDS.map(lambda value: json.dumps(value).encode())
)
def test_the_body_parsers_answer_or_name_a_field(body: bytes) -> None:
    for parse in (parse_authorization_request, parse_authentication_request):
        failure: BrokerHookRequestError | None = None
        try:
            parsed = parse(body)
        except BrokerHookRequestError as exc:
            failure = exc
        if failure is not None:
            assert failure.field in _BODY_FIELDS
            continue
        document = json.loads(body)
        assert parsed.clientid == document["clientid"]
        assert parsed.username == document["username"]


def test_each_name_gets_exactly_what_the_acl_renders(cloud: Cloud) -> None:
    with cloud.session() as session:
        rendered = all_device_permissions(session)
        by_name: dict[str, DevicePermissions] = {device.thing_name: device for device in rendered.devices}
        names = {
            *session.scalars(sa.select(Thing.name)),
            *session.scalars(sa.select(Certificate.common_name)),
        }
        for name in sorted(names | {"nobody", "edgewise-jobs"}):
            assert gateway_permissions(session, name) == by_name.get(name), name
    assert {"pump-1", "pump-2", "alias-1", "loose"} <= set(by_name)
    assert "twin" in {entry.name for entry in rendered.skipped}


async def test_the_api_serves_the_managed_brokers_acl_and_crl_to_an_admin(cloud: Cloud) -> None:
    with cloud.session() as session:
        expected = render_acl(all_device_permissions(session).devices)
    async with cloud.client(cloud.first.admin_token) as admin:
        acl = await admin.get("/broker/acl")
        crl = await admin.get("/broker/crl")
    async with cloud.client(cloud.hook_token) as hook:
        assert (await hook.get("/broker/acl")).status_code == 401
    assert acl.status_code == 200
    assert acl.headers["content-type"].startswith("text/plain")
    assert acl.text == expected
    assert "user pump-1" in acl.text
    assert crl.status_code == 200
    x509.load_pem_x509_crl(crl.text.encode())


@pytest.fixture
def cli(cloud: Cloud) -> Iterator[Any]:
    # The module's app, served on a real socket too (the engine it disposes of on the way out opens again on use).
    with served_api(cloud.app) as url:

        def invoke(*args: str) -> Any:
            env = {"EDGEWISE_API_TOKEN": cloud.first.admin_token, "EDGEWISE_API_URL": url}
            # The broker commands alone: typer builds every command of the app it is given on each call.
            return CliRunner().invoke(broker_cli.app, list(args), env=env)

        yield invoke


def test_the_cli_prints_and_writes_the_acl_and_crl(cloud: Cloud, cli: Any, tmp_path: Path) -> None:
    assert broker_cli.app in [group.typer_instance for group in cli_app.registered_groups]
    with cloud.session() as session:
        expected = render_acl(all_device_permissions(session).devices)

    printed = cli("acl")
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == expected
    assert "edgewise broker crl" in printed.stderr
    written = cli("acl", "--output", str(tmp_path / "devices.acl"))
    assert written.exit_code == 0, written.output
    assert (tmp_path / "devices.acl").read_text() == expected
    assert cli("crl", "--output", str(tmp_path / "devices.crl")).exit_code == 0
    x509.load_pem_x509_crl((tmp_path / "devices.crl").read_bytes())


def test_the_hook_token_is_made_once_readable_by_the_owner_only(tmp_path: Path) -> None:
    path = ensure_hook_token(tmp_path)
    token = read_hook_token(tmp_path)

    assert path == tmp_path / HOOK_TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token is not None
    assert len(token) >= 32
    assert ensure_hook_token(tmp_path) == path
    assert read_hook_token(tmp_path) == token
    assert read_hook_token(tmp_path / "elsewhere") is None


def test_cloud_up_with_an_external_broker_makes_the_hook_token(tmp_path: Path) -> None:
    options = ServerOptions(
        data_dir=tmp_path / "cloud", broker="external", broker_url="mqtts://broker.example:8883"
    )
    prepare(options)
    token_file = tmp_path / "cloud" / HOOK_TOKEN_FILE
    token = read_hook_token(tmp_path / "cloud")

    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token is not None
