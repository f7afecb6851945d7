"""The device agent in a real runtime process, against a real Mosquitto with mutual TLS and a test-side stand-in
for the cloud (jobs service, component resolve responder, HTTPS artifact server; tests/support/fleet_cloud.py)
speaking docs/device-protocol.md."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.device_config import write_device_config
from tests.support.fleet_cloud import FleetCloud, fleet_cloud
from tests.support.mosquitto import Mosquitto, MqttClient
from tests.support.pki import CertificateAuthority
from tests.support.runtime_process import RuntimeProcess, running
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
THING = "edge-1"
HEALTH = f"$aws/things/{THING}/greengrassv2/health/json"
PRESENCE = f"$aws/things/{THING}/edgewise/presence"
JOBS = f"$aws/things/{THING}/jobs"
START_NEXT = f"{JOBS}/namespace-aws-gg-deployment/start-next"
NOTIFY = f"{JOBS}/notify-namespace-aws-gg-deployment"
SLEEPER = b"import time\nwhile True:\n    time.sleep(60)\n"
FAILER = b"raise SystemExit(3)\n"
#: An Install step that says it started, then waits for a file the test creates.
WAITER = (
    b"import pathlib, sys, time\n"
    b"pathlib.Path(sys.argv[1]).write_text('installing')\n"
    b"while not pathlib.Path(sys.argv[2]).exists():\n"
    b"    time.sleep(0.05)\n"
)


def recipe(
    name: str,
    version: str,
    script: str,
    *,
    dependencies: dict[str, str] | None = None,
    install: str | None = None,
) -> dict[str, Any]:
    lifecycle = {"Run": f"{sys.executable} {{artifacts:path}}/{script}"}
    artifacts = [{"Uri": f"s3://edgewise-artifacts/{name}/{version}/{script}"}]
    if install is not None:
        lifecycle["Install"] = install
        artifacts.append({"Uri": f"s3://edgewise-artifacts/{name}/{version}/install.py"})
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentDependencies": {
            dependency: {"VersionRequirement": requirement}
            for dependency, requirement in (dependencies or {}).items()
        },
        "Manifests": [{"Platform": {"os": "*"}, "Artifacts": artifacts, "Lifecycle": lifecycle}],
    }


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "pki")


@pytest.fixture
def broker(tmp_path: Path, ca: CertificateAuthority) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker", ca) as running_broker:
        yield running_broker


@pytest.fixture
def cloud(broker: Mosquitto) -> Iterator[FleetCloud]:
    with fleet_cloud(broker, THING) as stand_in:
        yield stand_in


@pytest.fixture
def observer(broker: Mosquitto) -> Iterator[MqttClient]:
    """Sees what the device says about itself (fleet status, presence)."""
    with broker.client("observer", clean_start=False) as client:
        client.subscribe(HEALTH)
        client.subscribe(PRESENCE)
        yield client


@pytest.fixture
def config_file(tmp_path: Path, ca: CertificateAuthority, broker: Mosquitto) -> Path:
    return write_device_config(tmp_path / "edgewise.yaml", thing=THING, ca=ca, port=broker.port)


@pytest.fixture
def runtime(tmp_path: Path, config_file: Path, cloud: FleetCloud) -> Iterator[RuntimeProcess]:
    with running(tmp_path / "root", "--config", str(config_file), "--error-window", "60") as process:
        yield process


def health_messages(observer: MqttClient) -> list[dict[str, Any]]:
    return [json.loads(payload) for payload in observer.payloads(HEALTH)]


def presence(observer: MqttClient) -> list[dict[str, Any]]:
    return [json.loads(payload) for payload in observer.payloads(PRESENCE)]


def components(runtime: RuntimeProcess) -> dict[str, tuple[str, str]]:
    listed = runtime.call("ListComponents")["components"]
    return {entry["componentName"]: (entry["version"], entry["state"]) for entry in listed}


def test_a_deployment_job_is_resolved_downloaded_applied_and_reported(
    broker: Mosquitto, cloud: FleetCloud, observer: MqttClient, runtime: RuntimeProcess
) -> None:
    cloud.publish_component(recipe("com.example.Lib", "1.0.0", "lib.py"), {"lib.py": SLEEPER})
    cloud.publish_component(recipe("com.example.Lib", "1.1.0", "lib.py"), {"lib.py": SLEEPER})
    cloud.publish_component(
        recipe("com.example.App", "1.0.0", "app.py", dependencies={"com.example.Lib": ">=1.0.0 <2.0.0"}),
        {"app.py": SLEEPER},
    )

    cloud.deploy("job-1", {"com.example.App": "1.0.0"}, group="sensors")
    job = cloud.wait_status("job-1", "SUCCEEDED")

    assert job.status_details == {"detailed-deployment-status": "SUCCESSFUL"}
    assert "job-1" in cloud.started  # start-next made it IN_PROGRESS: no update of its own
    assert [update["status"] for update in job.updates] == ["SUCCEEDED"]
    assert components(runtime)["com.example.App"] == ("1.0.0", "RUNNING")
    assert components(runtime)["com.example.Lib"] == ("1.1.0", "RUNNING")
    # Asked round by round: the root first, then the dependency its recipes name.
    asked = [request["components"] for request in cloud.resolve_requests]
    assert asked == [{"com.example.App": "1.0.0"}, {"com.example.Lib": ">=1.0.0 <2.0.0"}]

    arn = job.document["configurationArn"]
    after = wait_until(
        lambda: [m for m in health_messages(observer) if m["trigger"] == "THING_GROUP_DEPLOYMENT"],
        what="the fleet status message after the deployment",
    )[-1]
    assert after["messageType"] == "COMPLETE"
    assert after["overallDeviceStatus"] == "HEALTHY"
    assert after["thing"] == THING
    assert isinstance(after["timestamp"], int)
    assert isinstance(after["sequenceNumber"], int)
    assert {"ggcVersion", "platform", "architecture"} <= set(after)
    listed = {entry["componentName"]: entry for entry in after["components"]}
    assert listed["com.example.App"] == {
        "componentName": "com.example.App",
        "version": "1.0.0",
        "fleetConfigArns": [arn],
        "isRoot": True,
        "status": "RUNNING",
    }
    assert listed["com.example.Lib"]["isRoot"] is False
    information = after["deploymentInformation"]
    assert information["status"] == "SUCCEEDED"
    assert information["deploymentId"] == "deployment-job-1"
    assert information["fleetConfigurationArnForStatus"] == arn
    assert information["statusDetails"]["detailedStatus"] == "SUCCESSFUL"
    launch = health_messages(observer)[0]
    assert (launch["trigger"], launch["messageType"]) == ("NUCLEUS_LAUNCH", "COMPLETE")

    with broker.client("late-observer") as late:
        late.subscribe(PRESENCE)
        retained = wait_until(lambda: late.received(PRESENCE), what="the retained presence")[0]
    assert retained.retain
    assert json.loads(retained.payload)["state"] == "online"
    assert isinstance(json.loads(retained.payload)["timestamp"], int)


def is_request(topic: str) -> bool:
    """Whether the device sent a message on ``topic`` (not a reply or notification from the cloud, not its
    presence)."""
    return not topic.endswith(("/accepted", "/rejected")) and "/notify" not in topic and topic != PRESENCE


def start_next_requests(wiretap: MqttClient) -> int:
    return sum(message.topic == START_NEXT for message in wiretap.received(START_NEXT))


def test_one_deployment_takes_four_requests_and_five_messages_from_the_cloud(
    broker: Mosquitto, cloud: FleetCloud, observer: MqttClient, runtime: RuntimeProcess
) -> None:
    cloud.publish_component(recipe("com.example.App", "1.0.0", "app.py"), {"app.py": SLEEPER})
    with broker.client("wiretap") as wiretap:
        wiretap.subscribe(f"$aws/things/{THING}/#")
        # Between two start-next requests that find nothing: what the device sent before them is left out,
        # anything the deployment makes it send is in.
        wait_until(lambda: cloud.started, what="the start-next on connection")
        cloud.nudge()
        wait_until(lambda: len(cloud.started) == 2, what="the start-next the nudge makes")
        cloud.deploy("job-1", {"com.example.App": "1.0.0"})
        cloud.wait_status("job-1", "SUCCEEDED")
        wait_until(
            lambda: [m for m in health_messages(observer) if m["trigger"] == "THING_GROUP_DEPLOYMENT"],
            what="the fleet status message after the deployment",
        )
        wait_until(lambda: len(wiretap.payloads(NOTIFY)) == 3, what="the notification that job-1 ended")
        cloud.nudge()
        wait_until(lambda: len(cloud.started) == 4, what="the start-next after the deployment")
        wait_until(lambda: start_next_requests(wiretap) >= 3, what="the wiretap to see it")
        messages = [message.topic for message in wiretap.received()]

    *_, first, _, last = (index for index, topic in enumerate(messages) if topic == START_NEXT)
    between = messages[first + 1 : last]
    assert sorted(topic for topic in between if is_request(topic)) == [
        f"$aws/things/{THING}/edgewise/components/resolve",
        HEALTH,
        f"{JOBS}/job-1/namespace-aws-gg-deployment/update",
        START_NEXT,
    ]
    deployment = [
        NOTIFY,  # job-1 is pending
        f"{START_NEXT}/accepted",
        f"$aws/things/{THING}/edgewise/components/resolve/accepted",
        f"{JOBS}/job-1/namespace-aws-gg-deployment/update/accepted",
        NOTIFY,  # job-1 is no longer pending
    ]
    markers = [f"{START_NEXT}/accepted", NOTIFY]  # the first marker's answer, the second nudge
    assert sorted(topic for topic in between if not is_request(topic)) == sorted(deployment + markers)
    assert cloud.started[-3:] == [None, "job-1", None]


def test_a_component_that_breaks_is_rolled_back_and_the_job_fails(
    cloud: FleetCloud, runtime: RuntimeProcess
) -> None:
    cloud.publish_component(recipe("com.example.App", "1.0.0", "app.py"), {"app.py": SLEEPER})
    failing_install = f"{sys.executable} {{artifacts:path}}/install.py"
    cloud.publish_component(
        recipe("com.example.App", "2.0.0", "app.py", install=failing_install),
        {"app.py": SLEEPER, "install.py": FAILER},
    )
    cloud.deploy("job-1", {"com.example.App": "1.0.0"})
    cloud.wait_status("job-1", "SUCCEEDED")

    cloud.deploy("job-2", {"com.example.App": "2.0.0"})
    job = cloud.wait_status("job-2", "FAILED", timeout=120)

    assert job.status_details["detailed-deployment-status"] == "FAILED_ROLLBACK_COMPLETE"
    assert json.loads(job.status_details["deployment-error-types"]) == ["COMPONENT_BROKEN"]
    assert "com.example.App is BROKEN" in job.status_details["deployment-failure-cause"]
    assert all(len(value) <= 1024 for value in job.status_details.values())
    wait_until(lambda: components(runtime)["com.example.App"] == ("1.0.0", "RUNNING"), what="the rollback")


def test_an_artifact_whose_digest_does_not_match_fails_with_no_state_change(
    cloud: FleetCloud, runtime: RuntimeProcess
) -> None:
    cloud.publish_component(
        recipe("com.example.App", "1.0.0", "app.py"),
        {"app.py": SLEEPER},
        served={"app.py": SLEEPER.replace(b"60", b"61")},  # same size, other bytes
    )

    cloud.deploy("job-1", {"com.example.App": "1.0.0"})
    job = cloud.wait_status("job-1", "FAILED")

    assert job.status_details["detailed-deployment-status"] == "FAILED_NO_STATE_CHANGE"
    assert json.loads(job.status_details["deployment-error-types"]) == ["ARTIFACT_DOWNLOAD_ERROR"]
    assert "digest" in job.status_details["deployment-failure-cause"]
    assert "com.example.App" not in components(runtime)
    assert not list(runtime.paths.artifacts_dir.rglob("app.py"))


def test_a_missing_recipe_fails_with_no_state_change(cloud: FleetCloud, runtime: RuntimeProcess) -> None:
    cloud.deploy("job-1", {"com.example.Nowhere": "1.0.0"})
    job = cloud.wait_status("job-1", "FAILED")

    assert job.status_details["detailed-deployment-status"] == "FAILED_NO_STATE_CHANGE"
    assert "no recipe for com.example.Nowhere" in job.status_details["deployment-failure-cause"]


def test_an_interrupted_download_resumes_where_it_stopped(cloud: FleetCloud, runtime: RuntimeProcess) -> None:
    big = SLEEPER + b"#" + b"x" * 600_000 + b"\n"
    cloud.publish_component(recipe("com.example.App", "1.0.0", "app.py"), {"app.py": big})
    stored = "com.example.App-1.0.0-app.py"
    cloud.artifacts.drop_once.add(stored)

    cloud.deploy("job-1", {"com.example.App": "1.0.0"})
    cloud.wait_status("job-1", "SUCCEEDED")

    ranges = [header for name, header in cloud.artifacts.requests if name == stored]
    assert ranges[0] is None
    assert ranges[1] is not None
    assert ranges[1].startswith("bytes=")
    assert ranges[1] != "bytes=0-"
    assert (runtime.paths.component_artifacts("com.example.App", "1.0.0") / "app.py").read_bytes() == big


def test_groups_deploying_conflicting_versions_fail_naming_both_groups(
    cloud: FleetCloud, runtime: RuntimeProcess
) -> None:
    cloud.publish_component(recipe("com.example.Lib", "1.0.0", "lib.py"), {"lib.py": SLEEPER})
    cloud.publish_component(recipe("com.example.Lib", "2.0.0", "lib.py"), {"lib.py": SLEEPER})
    cloud.publish_component(
        recipe("com.example.App", "1.0.0", "app.py", dependencies={"com.example.Lib": "^1.0.0"}),
        {"app.py": SLEEPER},
    )
    cloud.deploy("job-1", {"com.example.App": "1.0.0"}, group="apps")
    cloud.wait_status("job-1", "SUCCEEDED")

    cloud.deploy("job-2", {"com.example.Lib": "2.0.0"}, group="libs")
    job = cloud.wait_status("job-2", "FAILED")

    cause = job.status_details["deployment-failure-cause"]
    assert "thinggroup/apps" in cause
    assert "thinggroup/libs" in cause
    assert job.status_details["detailed-deployment-status"] == "FAILED_NO_STATE_CHANGE"
    assert components(runtime)["com.example.Lib"] == ("1.0.0", "RUNNING")


def test_a_runtime_killed_mid_deployment_finishes_and_reports_after_restart(
    tmp_path: Path, cloud: FleetCloud, observer: MqttClient, config_file: Path
) -> None:
    started, go = tmp_path / "started", tmp_path / "go"
    install = f"{sys.executable} {{artifacts:path}}/install.py {started} {go}"
    cloud.publish_component(
        recipe("com.example.Slow", "1.0.0", "app.py", install=install),
        {"app.py": SLEEPER, "install.py": WAITER},
    )
    runtime = RuntimeProcess(tmp_path / "root", "--config", str(config_file)).start()
    try:
        wait_until(lambda: [p for p in presence(observer) if p["state"] == "online"], what="online presence")
        cloud.deploy("job-1", {"com.example.Slow": "1.0.0"})
        wait_until(started.exists, what="the component's Install step")
        cloud.wait_status("job-1", "IN_PROGRESS")

        runtime.kill9()
        offline = wait_until(
            lambda: [p for p in presence(observer) if p["state"] == "offline"], what="the last will"
        )
        assert isinstance(offline[0]["timestamp"], int)
        started.unlink()
        runtime.start()
        wait_until(started.exists, what="the Install step again after the restart")
        go.touch()

        job = cloud.wait_status("job-1", "SUCCEEDED")
        assert job.status_details == {"detailed-deployment-status": "SUCCESSFUL"}
        assert [update["status"] for update in job.updates] == ["SUCCEEDED"]
        assert components(runtime)["com.example.Slow"] == ("1.0.0", "RUNNING")
        assert presence(observer)[-1]["state"] == "online"
    finally:
        if runtime.process is not None and runtime.process.poll() is None:
            runtime.stop()


def test_a_device_offline_gets_its_deployment_on_reconnect_and_reports_what_it_did_offline(
    tmp_path: Path, broker: Mosquitto, cloud: FleetCloud, observer: MqttClient, runtime: RuntimeProcess
) -> None:
    cloud.publish_component(recipe("com.example.App", "1.0.0", "app.py"), {"app.py": SLEEPER})
    started, go = tmp_path / "started", tmp_path / "go"
    install = f"{sys.executable} {{artifacts:path}}/install.py {started} {go}"
    cloud.publish_component(
        recipe("com.example.Slow", "1.0.0", "app.py", install=install),
        {"app.py": SLEEPER, "install.py": WAITER},
    )
    wait_until(lambda: presence(observer), what="the device to connect")

    broker.stop()
    cloud.deploy("job-1", {"com.example.App": "1.0.0"})  # queued while the device cannot hear it
    broker.start()
    cloud.wait_connected()
    cloud.wait_status("job-1", "SUCCEEDED")
    assert components(runtime)["com.example.App"] == ("1.0.0", "RUNNING")

    cloud.deploy("job-2", {"com.example.Slow": "1.0.0"}, group="second")
    wait_until(started.exists, what="the component's Install step")
    broker.stop()
    go.touch()
    local = runtime.wait_deployment("deployment-job-2")
    assert local["status"] == "SUCCEEDED"
    broker.start()
    cloud.wait_connected()
    job = cloud.wait_status("job-2", "SUCCEEDED")
    assert job.status_details == {"detailed-deployment-status": "SUCCESSFUL"}

    # With no cloud at all, the last good deployment runs again after a restart.
    broker.stop()
    runtime.stop()
    runtime.start()
    wait_until(
        lambda: (
            components(runtime).get("com.example.App") == ("1.0.0", "RUNNING")
            and components(runtime).get("com.example.Slow") == ("1.0.0", "RUNNING")
        ),
        what="the fleet components after a restart without the cloud",
    )


def test_a_final_report_the_cloud_never_got_is_made_again(
    tmp_path: Path, config_file: Path, cloud: FleetCloud
) -> None:
    # The report is checked once it has had a confirm interval to be answered: a short one.
    config_file.write_text(config_file.read_text() + "  fleet: {confirmIntervalSeconds: 1}\n")
    cloud.publish_component(recipe("com.example.App", "1.0.0", "app.py"), {"app.py": SLEEPER})
    cloud.lose_final_reports = 1

    with running(tmp_path / "root", "--config", str(config_file)):
        cloud.deploy("job-1", {"com.example.App": "1.0.0"})
        job = cloud.wait_status("job-1", "SUCCEEDED")

    assert [report["status"] for report in cloud.lost_reports] == ["SUCCEEDED"]
    assert [update["status"] for update in job.updates] == ["SUCCEEDED"]


def test_a_job_cancelled_before_activation_is_not_applied(cloud: FleetCloud, runtime: RuntimeProcess) -> None:
    cloud.publish_component(recipe("com.example.App", "1.0.0", "app.py"), {"app.py": SLEEPER})
    cloud.publish_component(recipe("com.example.Other", "1.0.0", "other.py"), {"other.py": SLEEPER})
    cloud.answer_resolve.clear()  # the device waits for its recipes
    cloud.deploy("job-1", {"com.example.Other": "1.0.0"})
    wait_until(lambda: cloud.resolve_requests, what="the resolve request")

    cloud.cancel("job-1")
    # The device asks about its job once it left the pending list; the answer reaches it before the recipes.
    wait_until(lambda: "job-1" in cloud.described, what="the device to check on its job")
    cloud.answer_resolve.set()
    cloud.deploy("job-2", {"com.example.App": "1.0.0"})
    cloud.wait_status("job-2", "SUCCEEDED")

    assert cloud.jobs["job-1"].updates == []
    assert "com.example.Other" not in components(runtime)
    assert components(runtime)["com.example.App"] == ("1.0.0", "RUNNING")


def test_a_new_deployment_to_a_group_replaces_the_groups_components(
    cloud: FleetCloud, runtime: RuntimeProcess
) -> None:
    cloud.publish_component(recipe("com.example.App", "1.0.0", "app.py"), {"app.py": SLEEPER})
    cloud.publish_component(recipe("com.example.Other", "1.0.0", "other.py"), {"other.py": SLEEPER})
    cloud.publish_component(recipe("com.example.Kept", "1.0.0", "kept.py"), {"kept.py": SLEEPER})
    cloud.deploy("job-1", {"com.example.Kept": "1.0.0"}, group="other-group")
    cloud.deploy("job-2", {"com.example.App": "1.0.0"}, group="sensors")
    cloud.wait_status("job-2", "SUCCEEDED")

    cloud.deploy("job-3", {"com.example.Other": "1.0.0"}, group="sensors")
    cloud.wait_status("job-3", "SUCCEEDED")

    running_now = components(runtime)
    assert "com.example.App" not in running_now
    assert running_now["com.example.Other"] == ("1.0.0", "RUNNING")
    assert running_now["com.example.Kept"] == ("1.0.0", "RUNNING")
    assert cloud.jobs["job-1"].status == "SUCCEEDED"


def test_a_runtime_with_the_fleet_agent_turned_off_runs_none_of_it(
    tmp_path: Path, config_file: Path, broker: Mosquitto
) -> None:
    config_file.write_text(config_file.read_text() + "  fleet: {enabled: false}\n")

    with running(tmp_path / "root", "--config", str(config_file)) as process:
        log = process.paths.runtime_log
        wait_until(lambda: "Connected to the cloud" in log.read_text(), what="the cloud connection")

        assert "Fleet agent started" not in log.read_text()
        assert not (process.paths.deployments_dir / "fleet.json").exists()
