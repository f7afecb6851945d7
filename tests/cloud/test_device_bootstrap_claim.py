"""``edgewise device bootstrap --claim-cert``: provisioning by claim over MQTT against a real ``edgewise cloud up``
(claim certificate and template made with the CLI), then the written files used by paho and a real runtime."""

from __future__ import annotations

import gc
import json
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from typer.testing import CliRunner, Result

from edgewise.cli.main import app
from edgewise.cloud.identity import DEFAULT_DEVICE_POLICY_NAME
from tests.support.cloud_process import CloudProcess
from tests.support.mosquitto import Mosquitto, mtls_connect
from tests.support.pki import CertificateAuthority
from tests.support.ports import free_port
from tests.support.runtime_process import running
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

FILES = ("device.pem.crt", "private.pem.key", "root-ca.pem", "edgewise.yaml")
TEMPLATE = "sensors"


def _allow(actions: list[str], kind: str, topics: list[str]) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": [f"arn:aws:iot:*:*:{kind}/{t}" for t in topics]}


def claim_policy(templates: str) -> dict[str, Any]:
    """A claim policy: connect, and the provisioning topics of ``templates`` (a name or ``*``)."""
    topics = [
        "$aws/certificates/create/*",
        "$aws/certificates/create-from-csr/*",
        f"$aws/provisioning-templates/{templates}/provision/*",
    ]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
            _allow(["iot:Publish", "iot:Receive"], "topic", topics),
            _allow(["iot:Subscribe"], "topicfilter", topics),
        ],
    }


TEMPLATE_BODY: dict[str, Any] = {
    "Parameters": {"SerialNumber": {"Type": "String"}, "Site": {"Type": "String", "Default": "berlin"}},
    "Resources": {
        "thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {
                "ThingName": {"Fn::Join": ["-", ["sensor", {"Ref": "SerialNumber"}]]},
                "AttributePayload": {"site": {"Ref": "Site"}},
            },
        },
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
        },
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": DEFAULT_DEVICE_POLICY_NAME}},
    },
    "DeviceConfiguration": {"serial": {"Ref": "SerialNumber"}, "site": {"Ref": "Site"}},
}


def cli(*args: str, token: str | None = None) -> Result:
    env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": token, "EDGEWISE_API_URL": None}
    return CliRunner().invoke(app, list(args), env=env)


def admin(cloud: CloudProcess, *args: str) -> Result:
    """An operator's CLI command against ``cloud``; it must succeed."""
    result = cli(*args, "--api", cloud.api_url, token=cloud.admin_token)
    assert result.exit_code == 0, result.stderr
    return result


@dataclass(frozen=True)
class Claim:
    """Where the claim certificates made for these tests are."""

    any_template: Path  #: a claim certificate whose policy allows every template's topics
    sensors_only: Path  #: one whose policy allows only template ``sensors``


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("bootstrap-claim") / "data") as process:
        yield process.wait_ready()


@pytest.fixture(scope="module")
def claim(cloud: CloudProcess, tmp_path_factory: pytest.TempPathFactory) -> Claim:
    """Claim policies, templates ``sensors`` and ``paused`` (disabled) and two claim certificates, via the CLI."""
    directory = tmp_path_factory.mktemp("claim")
    admin(cloud, "policy", "create", "claim-any", "--document", json.dumps(claim_policy("*")))
    admin(cloud, "policy", "create", "claim-sensors", "--document", json.dumps(claim_policy(TEMPLATE)))
    body = directory / "template.json"
    body.write_text(json.dumps(TEMPLATE_BODY))
    admin(cloud, "provisioning-template", "create", TEMPLATE, "--template-body", str(body))
    admin(cloud, "provisioning-template", "create", "paused", "--template-body", str(body), "--disabled")
    for policy, name in (("claim-any", "any"), ("claim-sensors", "sensors")):
        admin(cloud, "cert", "create-claim", "--policy", policy, "--out", str(directory / name))
    return Claim(any_template=directory / "any", sensors_only=directory / "sensors")


def bootstrap(claim_dir: Path, out: Path, *args: str) -> Result:
    """``edgewise device bootstrap --claim-cert`` as a device runs it: no API token."""
    return cli(
        "device",
        "bootstrap",
        "--claim-cert",
        str(claim_dir / "claim.pem.crt"),
        "--claim-key",
        str(claim_dir / "claim.private.pem.key"),
        "--out",
        str(out),
        *args,
    )


def failure(result: Result) -> str:
    """The error of a command that must have failed with exit status 1, unwrapped."""
    assert result.exit_code == 1, result.stdout
    assert result.stderr.startswith("error: "), result.stderr
    return " ".join(result.stderr.split())


def api_json(cloud: CloudProcess, path: str) -> Any:
    with cloud.api(cloud.admin_token) as client:
        response = client.get(path)
        assert response.status_code == 200, response.text
        return response.json()


def echo_on_own_topic(port: int, directory: Path, thing: str) -> bool:
    """Whether a paho client with the files in ``directory`` receives its own message on ``dt/<thing>/echo``."""
    received = threading.Event()
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=thing, protocol=MQTTProtocolVersion.MQTTv5)
    client.tls_set(
        str(directory / "root-ca.pem"), str(directory / "device.pem.crt"), str(directory / "private.pem.key")
    )
    client.on_connect = lambda c, *_: c.subscribe(f"dt/{thing}/echo", qos=1)
    client.on_subscribe = lambda _c, _u, _m, reasons, _p: reasons[0].is_failure or subscribed.set()
    client.on_message = lambda *_: received.set()
    try:
        client.connect("localhost", port, keepalive=30)
    except OSError:
        return False
    client.loop_start()
    try:
        if not subscribed.wait(10):
            return False
        client.publish(f"dt/{thing}/echo", b"hello", qos=1)
        return received.wait(5)
    finally:
        client.disconnect()
        client.loop_stop()


def key_matches_certificate(directory: Path) -> bool:
    key = serialization.load_pem_private_key((directory / "private.pem.key").read_bytes(), password=None)
    certificate = x509.load_pem_x509_certificate((directory / "device.pem.crt").read_bytes())
    return bool(certificate.public_key() == key.public_key())


def test_claim_bootstrap_provisions_the_device_and_its_runtime_connects(
    cloud: CloudProcess, claim: Claim, tmp_path: Path
) -> None:
    out = tmp_path / "device"
    cloud_json = cloud.data_dir / "cloud.json"
    result = bootstrap(
        claim.any_template, out, "--cloud", str(cloud_json), "--template", TEMPLATE, "-p", "SerialNumber=100"
    )
    assert result.exit_code == 0, result.stderr
    assert "Provisioned thing sensor-100 with certificate" in result.stdout
    assert "Device configuration: serial=100, site=berlin" in result.stdout
    assert sorted(path.name for path in out.iterdir()) == sorted(FILES)
    assert stat.S_IMODE((out / "private.pem.key").stat().st_mode) == 0o600
    assert (out / "root-ca.pem").read_text() == (cloud.data_dir / "ca" / "ca.pem").read_text()
    assert key_matches_certificate(out)
    config = yaml.safe_load((out / "edgewise.yaml").read_text())
    assert config["thingName"] == "sensor-100"
    endpoint = json.loads(cloud_json.read_text())["mqttEndpoint"]
    assert f"mqtts://{config['cloud']['endpoint']}:{config['cloud']['port']}" == endpoint
    assert api_json(cloud, "/things/sensor-100")["attributes"] == {"site": "berlin"}
    [principal] = api_json(cloud, "/things/sensor-100/principals")["data"]
    assert principal["certificatePem"] == (out / "device.pem.crt").read_text()
    assert principal["status"] == "ACTIVE"

    # The broker learns of the activated certificate a moment after RegisterThing answers.
    wait_until(
        lambda: echo_on_own_topic(cloud.mqtt_port, out, "sensor-100"),
        timeout=30,
        what="the provisioned device to use its own topic",
    )
    with running(tmp_path / "root", "--config", str(out / "edgewise.yaml")) as runtime:
        wait_until(
            lambda: "Connected to the cloud at" in runtime.stderr(),
            timeout=30,
            what="the runtime's cloud link to connect",
        )


def test_claim_bootstrap_with_csr_keeps_the_key_on_the_device(
    cloud: CloudProcess, claim: Claim, tmp_path: Path
) -> None:
    out = tmp_path / "device"
    ca = cloud.data_dir / "ca" / "ca.pem"
    result = bootstrap(
        claim.sensors_only,
        out,
        *("--endpoint", f"localhost:{cloud.mqtt_port}", "--ca", str(ca), "--template", TEMPLATE),
        *("--csr", "--parameter", "SerialNumber=101", "--parameter", "Site=paris"),
    )
    assert result.exit_code == 0, result.stderr
    assert "Device configuration: serial=101, site=paris" in result.stdout
    assert key_matches_certificate(out)
    assert stat.S_IMODE((out / "private.pem.key").stat().st_mode) == 0o600
    assert yaml.safe_load((out / "edgewise.yaml").read_text())["thingName"] == "sensor-101"
    assert api_json(cloud, "/things/sensor-101")["attributes"] == {"site": "paris"}
    wait_until(
        lambda: echo_on_own_topic(cloud.mqtt_port, out, "sensor-101"),
        timeout=30,
        what="the provisioned device to use its own topic",
    )


@pytest.mark.parametrize(
    ("template", "parameters", "expected"),
    [
        ("nosuch", ["SerialNumber=1"], "RegisterThing was rejected: ResourceNotFound (404)"),
        (TEMPLATE, ["SerialNumber=1", "Color=red"], "RegisterThing was rejected: InvalidParameters (400)"),
        (TEMPLATE, [], "SerialNumber"),
        ("paused", ["SerialNumber=1"], "RegisterThing was rejected: ResourceConflict (409)"),
    ],
    ids=["unknown-template", "unknown-parameter", "missing-parameter", "disabled-template"],
)
def test_claim_bootstrap_shows_the_rejection_and_writes_nothing(
    cloud: CloudProcess, claim: Claim, tmp_path: Path, template: str, parameters: list[str], expected: str
) -> None:
    out = tmp_path / "device"
    options = [item for parameter in parameters for item in ("-p", parameter)]
    message = failure(
        bootstrap(claim.any_template, out, "--data", str(cloud.data_dir), "--template", template, *options)
    )
    assert expected in message
    assert not out.exists()


def test_claim_bootstrap_bad_input_names_the_option_and_writes_nothing(
    cloud: CloudProcess, claim: Claim, tmp_path: Path
) -> None:
    out = tmp_path / "device"
    data = ("--data", str(cloud.data_dir))
    here = ("--template", TEMPLATE, *data)
    assert "exactly one of --thing NAME" in failure(bootstrap(claim.any_template, out, "--thing", "x", *here))
    assert "--claim-cert needs --claim-key FILE and --template NAME" in failure(
        bootstrap(claim.any_template, out, *data)
    )
    assert "--policy is only for --thing" in failure(
        bootstrap(claim.any_template, out, *here, "--policy", "p")
    )
    assert "--parameter: expected NAME=VALUE, got 'oops'" in failure(
        bootstrap(claim.any_template, out, *here, "-p", "oops")
    )
    assert "--parameter: 'A' is given twice" in failure(
        bootstrap(claim.any_template, out, *here, "-p", "A=1", "-p", "A=2")
    )
    assert "--template: 'a/+' must be 1-36 letters" in failure(
        bootstrap(claim.any_template, out, "--template", "a/+", *data)
    )
    assert "No MQTT endpoint" in failure(bootstrap(claim.any_template, out, "--template", TEMPLATE))
    assert "No CA certificate" in failure(
        bootstrap(claim.any_template, out, "--template", TEMPLATE, "--endpoint", "localhost:1")
    )
    assert f"--cloud: {tmp_path / 'no.json'}: cannot read it" in failure(
        bootstrap(claim.any_template, out, "--template", TEMPLATE, "--cloud", str(tmp_path / "no.json"))
    )
    assert f"--ca: cannot read {tmp_path / 'no-ca.pem'}" in failure(
        bootstrap(claim.any_template, out, *here, "--ca", str(tmp_path / "no-ca.pem"))
    )
    missing = tmp_path / "missing"
    assert f"--claim-cert: cannot read {missing / 'claim.pem.crt'}" in failure(bootstrap(missing, out, *here))
    mismatched = tmp_path / "mismatched"
    mismatched.mkdir()
    (mismatched / "claim.pem.crt").write_bytes((claim.any_template / "claim.pem.crt").read_bytes())
    (mismatched / "claim.private.pem.key").write_bytes(
        (claim.sensors_only / "claim.private.pem.key").read_bytes()
    )
    assert "is not the key of --claim-cert" in failure(bootstrap(mismatched, out, *here))
    (mismatched / "claim.private.pem.key").write_text("not a key")
    assert "is not an unencrypted PEM private key" in failure(bootstrap(mismatched, out, *here))
    assert not out.exists()

    thing_mode = cli("device", "bootstrap", "--thing", "x", "--csr", "--out", str(out), *data)
    assert "--csr is only for provisioning by claim" in failure(thing_mode)
    out.mkdir()
    (out / "edgewise.yaml").write_text("kept")
    assert "give --force to overwrite" in failure(bootstrap(claim.any_template, out, *here))
    assert [path.name for path in out.iterdir()] == ["edgewise.yaml"]
    assert (out / "edgewise.yaml").read_text() == "kept"


def test_claim_bootstrap_reports_topics_the_claim_policy_does_not_allow(
    cloud: CloudProcess, claim: Claim, tmp_path: Path
) -> None:
    out = tmp_path / "device"
    message = failure(
        bootstrap(
            claim.sensors_only, out, "--data", str(cloud.data_dir), "--template", "paused", "--timeout", "2"
        )
    )
    assert (
        "The broker refused to let the claim certificate publish to "
        "$aws/provisioning-templates/paused/provision/json (Not authorized)"
    ) in message
    assert not out.exists()


# paho-mqtt does not close its TLS socket when the handshake fails (``Client._ssl_wrap_socket``): the garbage
# collector does, with a ResourceWarning. Collected here, under this mark, so that it is neither hidden elsewhere
# nor blamed on a later test.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <ssl.SSLSocket:pytest.PytestUnraisableExceptionWarning"
)
def test_claim_bootstrap_names_what_did_not_answer(cloud: CloudProcess, tmp_path: Path) -> None:
    """A broker with no provisioning service, one with another CA, and no broker at all."""
    out = tmp_path / "device"
    authority = CertificateAuthority(tmp_path / "pki")
    credentials = authority.issue("claim-silent")
    claim_dir = tmp_path / "silent"
    claim_dir.mkdir()
    (claim_dir / "claim.pem.crt").write_bytes(credentials.certificate.read_bytes())
    (claim_dir / "claim.private.pem.key").write_bytes(credentials.private_key.read_bytes())
    with Mosquitto(tmp_path / "broker", authority) as broker:
        silent = failure(
            bootstrap(
                claim_dir,
                out,
                *("--endpoint", f"localhost:{broker.port}", "--ca", str(authority.certificate)),
                *("--template", TEMPLATE, "--timeout", "2"),
            )
        )
    assert (
        "No answer from the cloud's provisioning service to CreateKeysAndCertificate on "
        "$aws/certificates/create/json within 2 s"
    ) in silent
    other_ca = failure(
        bootstrap(
            claim_dir,
            out,
            *("--endpoint", f"localhost:{cloud.mqtt_port}", "--ca", str(authority.certificate)),
            *("--template", TEMPLATE),
        )
    )
    assert f"TLS with the broker at localhost:{cloud.mqtt_port} failed" in other_ca
    port = free_port()
    nobody = failure(
        bootstrap(
            claim_dir,
            out,
            *("--endpoint", f"localhost:{port}", "--ca", str(authority.certificate), "--template", TEMPLATE),
        )
    )
    assert f"Cannot reach the broker at localhost:{port}" in nobody
    assert not out.exists()
    gc.collect()


def test_claim_bootstrap_with_a_revoked_claim_certificate_names_the_refusal(
    cloud: CloudProcess, claim: Claim, tmp_path: Path
) -> None:
    claim_dir = tmp_path / "revoked"
    issued = admin(cloud, "cert", "create-claim", "--policy", "claim-any", "--out", str(claim_dir), "--json")
    certificate_id = json.loads(issued.stdout)["certificateId"]
    admin(cloud, "cert", "update", certificate_id, "--status", "REVOKED")
    ca = cloud.data_dir / "ca" / "ca.pem"

    def refused() -> bool:
        reason = mtls_connect(
            cloud.mqtt_port, "probe", ca, claim_dir / "claim.pem.crt", claim_dir / "claim.private.pem.key"
        )
        return not (hasattr(reason, "is_failure") and not reason.is_failure)

    wait_until(refused, timeout=30, what="the broker to refuse the revoked claim certificate")
    out = tmp_path / "device"
    message = failure(bootstrap(claim_dir, out, "--data", str(cloud.data_dir), "--template", TEMPLATE))
    assert (
        f"the broker at {json.loads((cloud.data_dir / 'cloud.json').read_text())['mqttEndpoint'][8:]}"
        in message
    )
    assert "claim certificate" in message
    assert not out.exists()
