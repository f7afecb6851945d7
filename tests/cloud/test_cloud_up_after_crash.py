"""``edgewise cloud up`` after a crash: a cloud killed with SIGKILL takes its Mosquitto with it, a broker an
earlier run left is stopped before the next start, and a port another process holds is named as the cause."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from tests.cloud.broker.leftovers import kill_if_it_runs, orphan_mosquitto, write_pid_file
from tests.support.cloud_process import CloudProcess, process_alive
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def test_sigkill_takes_the_broker_down_and_the_cloud_starts_again_on_the_same_port(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with CloudProcess(data_dir) as first:
        first.wait_ready()
        [broker] = first.mosquitto_pids()
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        try:
            wait_until(
                lambda: not process_alive(broker), what=f"Mosquitto (pid {broker}) to exit with its cloud"
            )
        finally:
            kill_if_it_runs(broker, data_dir / "broker" / "mosquitto.conf")
    with CloudProcess(data_dir, mqtt_port=first.mqtt_port) as second:
        second.wait_ready()
        assert len(second.mosquitto_pids()) == 1


def test_cloud_up_stops_the_broker_an_earlier_run_left_and_starts_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with CloudProcess(data_dir) as first:
        first.wait_ready()
    broker_dir = data_dir / "broker"
    with orphan_mosquitto(broker_dir / "mosquitto.conf", first.mqtt_port) as (orphan, owner):
        write_pid_file(broker_dir / "mosquitto.pid", pid=orphan, owner=owner)
        with CloudProcess(data_dir, mqtt_port=first.mqtt_port) as second:
            second.wait_ready()
            assert not process_alive(orphan)
            [broker] = second.mosquitto_pids()
            assert broker != orphan
            assert f"broker-leftover-stopped pid={orphan}" in second.stderr


def test_cloud_up_names_the_port_another_process_holds(tmp_path: Path) -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)), CloudProcess(tmp_path / "data", mqtt_port=port) as cloud:
        assert cloud.process.wait(60) == 1
        assert f"Port {port} (the devices' MQTT port) is held by another process" in cloud.stderr
        assert "A worker cannot connect" not in cloud.stderr
