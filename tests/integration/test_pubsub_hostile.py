"""Local pub/sub under a hostile client: thousands of subscriptions on one connection that is never read.

A well-behaved subscriber on the same runtime must still receive every message, in order, and the
runtime's memory must stay bounded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_pubsub_with_awsiotsdk import add_component, pubsub_policy
from tests.support.runtime_process import RuntimeProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
HOSTILE_REQUESTS = 2000
MATCHING_EVERY = 16  # every 16th hostile filter matches the load topic
MESSAGES = 5000
STREAM_LIMIT = 1024  # the IPC server's default streams per connection
# The hostile connection can hold at most 1024 queued events on each of its 64 matching streams, plus 1 MiB
# of socket output: about 25 MiB of ~300-byte frames. Allow for allocator slack and the runtime's own work.
RSS_GROWTH_LIMIT_MIB = 120


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"/proc/{pid}/status has no VmRSS line")


def read_json(path: Path, what: str) -> Any:
    return json.loads(wait_until(lambda: path.exists() and path.read_text(), timeout=120, what=what))


def test_a_stuck_client_with_thousands_of_subscriptions_does_not_hurt_others(
    runtime: RuntimeProcess, tmp_path: Path, recipes: Path, artifacts: Path
) -> None:
    assert runtime.process is not None
    pid = runtime.process.pid
    hostile_ready, subscriber_ready = tmp_path / "hostile.ready", tmp_path / "subscriber.ready"
    subscriber_out, publisher_out = tmp_path / "subscriber.json", tmp_path / "publisher.json"
    add_component(
        recipes,
        artifacts,
        "test.Hostile",
        "pubsub_hostile.py",
        [str(hostile_ready), str(HOSTILE_REQUESTS), str(MATCHING_EVERY)],
        pubsub_policy("test.Hostile", publish=[], subscribe=["*"]),
    )
    add_component(
        recipes,
        artifacts,
        "test.LoadSubscriber",
        "pubsub_load_subscriber.py",
        [str(subscriber_out), str(subscriber_ready)],
        pubsub_policy("test.LoadSubscriber", publish=[], subscribe=["load/*"]),
    )
    add_component(
        recipes,
        artifacts,
        "test.LoadPublisher",
        "pubsub_load_publisher.py",
        [str(publisher_out), str(MESSAGES), str(hostile_ready), str(subscriber_ready)],
        pubsub_policy("test.LoadPublisher", publish=["load/*"], subscribe=[]),
    )
    rss_before = rss_mib(pid)
    roots = dict.fromkeys(["test.Hostile", "test.LoadSubscriber", "test.LoadPublisher"], "1.0.0")
    deployment = runtime.deploy(recipes, artifacts=artifacts, rootComponentVersionsToAdd=roots)
    assert runtime.wait_deployment(deployment)["status"] == "SUCCEEDED"

    hostile = read_json(hostile_ready, "the hostile client's subscriptions")
    assert hostile["accepted"] == STREAM_LIMIT
    assert hostile["matching"] == STREAM_LIMIT // MATCHING_EVERY
    assert hostile["refused"] == HOSTILE_REQUESTS - STREAM_LIMIT
    assert hostile["refusals"] == [f"The connection already has {STREAM_LIMIT} open streams"]

    published = read_json(publisher_out, "the load publisher")
    received = read_json(subscriber_out, "the load subscriber")
    rss_after = rss_mib(pid)

    assert published["published"] == MESSAGES
    assert received == {"finished": True, "count": MESSAGES, "in_order": True}
    assert rss_after - rss_before < RSS_GROWTH_LIMIT_MIB, (rss_before, rss_after)
    # The stuck client is still connected, and the runtime still answers everyone else.
    assert runtime.states()["test.Hostile"] == "RUNNING"
    # What the stuck client lost is logged, rate-limited: not one line per dropped event.
    drop_lines = [
        line for line in runtime.paths.runtime_log.read_text().splitlines() if "could not keep up" in line
    ]
    assert 1 <= len(drop_lines) <= 3
    assert "subscriber test.Hostile could not keep up" in drop_lines[0]
