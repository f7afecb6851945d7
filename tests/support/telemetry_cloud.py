"""A device enrolled to a real ``edgewise cloud up`` for telemetry tests, and the telemetry the cloud stored, read
back through its API.

:func:`enroll_device` runs ``edgewise device bootstrap --thing`` as an operator would and tunes the
``edgewise.yaml`` it wrote for tests: reconnects within a second (a test restores the cloud and waits for the
device, not for a two-minute back-off), and optionally another broker port (a :class:`~tests.support.tcp_link`
in between). :func:`stored_messages` pages through ``/api/v1/telemetry/messages``.
"""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from edgewise.cli.main import app
from edgewise.protocol.device_config import ReconnectSection, parse_device_config, write_device_config
from tests.support.cloud_process import CloudProcess
from tests.support.waiting import wait_until

#: The most messages one API page holds (the API's own bound).
_PAGE = 10_000


def enroll_device(cloud: CloudProcess, thing: str, directory: Path, *, port: int | None = None) -> Path:
    """Register ``thing`` with a certificate under the default device policy; the path of its ``edgewise.yaml``
    (in ``directory``), whose broker port is ``port`` when given. Returns once the broker lets it in."""
    env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": cloud.admin_token, "EDGEWISE_API_URL": None}
    command = [
        "device",
        "bootstrap",
        "--thing",
        thing,
        "--out",
        str(directory),
        "--data",
        str(cloud.data_dir),
    ]
    result = CliRunner().invoke(app, [*command, "--api", cloud.api_url], env=env)
    assert result.exit_code == 0, result.stderr
    path = directory / "edgewise.yaml"
    config = parse_device_config(path.read_text(), base_dir=directory)
    assert config.cloud is not None
    cloud_section = dataclasses.replace(
        config.cloud,
        port=config.cloud.port if port is None else port,
        reconnect=ReconnectSection(min_delay=0.1, max_delay=1.0),
    )
    path.write_text(write_device_config(dataclasses.replace(config, cloud=cloud_section)))
    acl = cloud.data_dir / "broker" / "devices.acl"
    wait_until(lambda: acl.exists() and f"user {thing}" in acl.read_text(), what=f"{thing} in the broker ACL")
    return path


def stored_messages(cloud: CloudProcess, thing: str, stream: str) -> list[dict[str, Any]]:
    """Every message the cloud stored for ``thing`` on ``stream``, oldest first, payloads decoded to bytes."""
    messages: list[dict[str, Any]] = []
    params: dict[str, Any] = {"thing": thing, "stream": stream, "limit": _PAGE, "payloadEncoding": "base64"}
    with cloud.api(cloud.admin_token) as api:
        while True:
            answer = api.get("/telemetry/messages", params=params)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            for message in page["data"]:
                messages.append({**message, "payload": base64.b64decode(message["payload"])})
            if not page["more"]:
                return messages
            params["after"] = page["cursor"]
