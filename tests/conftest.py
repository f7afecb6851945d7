"""What every test shares: one terminal width for everything the CLI prints, and how ``pytest -n N --dist
loadfile`` hands the test files to its workers."""

from __future__ import annotations

import os

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadFileScheduling
from xdist.workermanage import WorkerController

# Rich reads COLUMNS when a console is made, and the CLI makes its consoles when its modules are imported: set
# here, before any test module imports them, every table and message renders at one width whatever order the
# tests run in (in pytest-xdist workers too) and however long their temporary paths are.
os.environ["COLUMNS"] = "200"


#: Files whose tests share no fixture (each test starts its own processes), so that each test is a work unit of its
#: own: the benchmarks' quick runs take minutes together, which would bound the one worker given the whole file.
INDEPENDENT_TESTS = ("tests/test_benchmarks.py",)
#: The longest files (half a minute to a minute on two cores), handed out first: the last file a worker takes bounds the run, and xdist
#: otherwise hands out files with many (short) tests first, leaving these long ones with few tests for the end.
LONG_FILES = (
    "tests/integration/test_fleet_e2e.py",
    "tests/cloud/test_api_schema.py",
    "tests/integration/test_demo.py",
    "tests/integration/test_data_path.py",
    "tests/integration/test_fleet_agent.py",
    "tests/cloud/test_device_bootstrap_claim.py",
    "tests/cloud/test_authorization_sync.py",
    "tests/integration/test_local_deployments.py",
    "tests/cloud/test_cloud_up.py",
    "tests/integration/test_ml_loop.py",
)


class LongFilesFirstScheduling(LoadFileScheduling):
    """``--dist loadfile`` with :data:`LONG_FILES` handed out first and each test of :data:`INDEPENDENT_TESTS` a
    work unit of its own (one test each, xdist hands those out last: short units fill the workers' last
    minutes)."""

    def _split_scope(self, nodeid: str) -> str:
        file = nodeid.split("::", 1)[0]
        return nodeid if file in INDEPENDENT_TESTS else file

    def _assign_work_unit(self, node: WorkerController) -> None:
        for file in reversed(LONG_FILES):
            if file in self.workqueue:
                self.workqueue.move_to_end(file, last=False)
        super()._assign_work_unit(node)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> LoadFileScheduling | None:
    """:class:`LongFilesFirstScheduling` for ``--dist loadfile``; xdist's own scheduler for the other modes."""
    if config.getvalue("dist") != "loadfile":
        return None
    return LongFilesFirstScheduling(config, log)
