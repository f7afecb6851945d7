"""Names the gateway gives the cloud's own clients and fleet provisioning's certificates are refused for things,
through the API and the CLI, against a real ``edgewise cloud up``: the answer names the field and the problem,
and nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cloud.test_cli_registry import run
from tests.support.cloud_process import CloudProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("reserved") / "data") as process:
        yield process.wait_ready()


@pytest.mark.parametrize(
    "name",
    [
        "edgewise-jobs",
        "edgewise-components",
        "edgewise-provisioning",
        "claim-" + "ab" * 12,
        "device-" + "01" * 12,
    ],
)
def test_the_api_refuses_a_reserved_thing_name_with_422(cloud: CloudProcess, name: str) -> None:
    with cloud.api(cloud.admin_token) as admin:
        response = admin.post("/things", json={"thingName": name})
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid_request"
        assert response.json()["message"].startswith(f"Field 'thingName' is invalid: {name!r} is reserved")
        assert admin.get(f"/things/{name}").status_code == 404


def test_the_cli_refuses_a_reserved_thing_name(cloud: CloudProcess) -> None:
    result = run(cloud, "thing", "create", "edgewise-fleet-status")
    assert result.exit_code == 1
    assert "thingName" in result.stderr
    assert "'edgewise-fleet-status' is reserved" in result.stderr
    assert run(cloud, "thing", "get", "edgewise-fleet-status").exit_code == 1
