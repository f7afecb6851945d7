"""The agent's records of job executions survive a restart; finished ones are pruned, unreadable ones set aside."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from edgewise.runtime.fleet import ledger as ledger_module
from edgewise.runtime.fleet.ledger import FINISHED_LIMIT, JobEntry, JobLedger, JobStage


def entry(
    key: str,
    stage: JobStage = JobStage.PREPARING,
    *,
    group: str | None = None,
    configuration_arn: str | None = None,
) -> JobEntry:
    job_id = key.split("#")[0]
    return JobEntry(
        key=key,
        job_id=job_id,
        execution_number=1,
        version=1,
        stage=stage,
        group=group,
        configuration_arn=configuration_arn,
    )


def test_entries_and_group_configurations_survive_a_restart(tmp_path: Path) -> None:
    ledger = JobLedger(tmp_path / "fleet.json")
    first = ledger.begin(entry("job-1#1"))
    ledger.update(
        first, stage=JobStage.APPLYING, deployment_id="d-1", group="thinggroup/a", configuration_arn="arn"
    )
    succeeded = ledger.begin(entry("job-2#1", group="thinggroup/a", configuration_arn="arn:1"))
    ledger.finish(succeeded, status="SUCCEEDED", details={}, information={"status": "SUCCEEDED"})
    failed = ledger.begin(entry("job-3#1", group="thinggroup/a", configuration_arn="arn:2"))
    ledger.finish(
        failed,
        status="FAILED",
        details={"detailed-deployment-status": "X"},
        information={"status": "FAILED"},
    )

    reread = JobLedger(tmp_path / "fleet.json")
    reread.load()

    assert [(e.key, e.stage, e.deployment_id) for e in reread.unfinished()] == [
        ("job-1#1", JobStage.APPLYING, "d-1")
    ]
    finished = reread.get("job-3#1")
    assert finished is not None
    assert (finished.stage, finished.status, finished.confirmed) == (JobStage.REPORTED, "FAILED", False)
    assert finished.details == {"detailed-deployment-status": "X"}
    assert reread.group_arns == {"thinggroup/a": "arn:1"}  # a failed deployment changes nothing
    assert reread.last_deployment == {"status": "FAILED"}


def test_reports_stay_unconfirmed_until_the_cloud_confirms_them_and_older_files_read_as_unconfirmed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fleet.json"
    path.write_text(
        '{"jobs": [{"key": "old#1", "job_id": "old", "execution_number": 1, "version": 1, "stage": "REPORTED",'
        ' "status": "FAILED", "details": {}, "sequence": 1}], "groupArns": {}, "lastDeployment": null}'
    )
    ledger = JobLedger(path)
    ledger.load()
    confirmed = ledger.begin(entry("new#1"))
    ledger.update(confirmed, stage=JobStage.REPORTED, status="SUCCEEDED", confirmed=True)

    reread = JobLedger(path)
    reread.load()

    assert [e.key for e in reread.unconfirmed()] == ["old#1"]
    assert reread.get("new#1") == replace(
        confirmed, stage=JobStage.REPORTED, status="SUCCEEDED", confirmed=True
    )


def test_only_the_newest_finished_entries_are_kept(tmp_path: Path) -> None:
    ledger = JobLedger(tmp_path / "fleet.json")
    ledger.begin(entry("open#1"))
    for index in range(FINISHED_LIMIT + 5):
        ledger.begin(entry(f"job-{index}#1", JobStage.REPORTED))
    ledger.begin(entry("last#1"))

    assert ledger.get("job-0#1") is None
    assert ledger.get(f"job-{FINISHED_LIMIT + 4}#1") is not None
    assert [e.key for e in ledger.unfinished()] == ["open#1", "last#1"]


def test_an_unreadable_file_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "fleet.json"
    path.write_text("{not json")
    ledger = JobLedger(path)

    ledger.load()

    assert ledger.unfinished() == []
    assert (tmp_path / "fleet.json.unreadable").read_text() == "{not json"


def test_finishing_records_the_report_and_the_groups_configuration_in_one_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One atomic file write: a crash leaves both the REPORTED stage and the group's new configuration, or
    neither (and one fsync pair less per deployment on the device)."""
    ledger = JobLedger(tmp_path / "fleet.json")
    applying = ledger.begin(
        entry("job-1#1", JobStage.APPLYING, group="thinggroup/a", configuration_arn="arn:1")
    )
    writes: list[bytes] = []
    write = ledger_module.write_atomically
    monkeypatch.setattr(
        ledger_module, "write_atomically", lambda path, data: (writes.append(data), write(path, data))
    )

    ledger.finish(applying, status="SUCCEEDED", details={}, information={"status": "SUCCEEDED"})

    assert len(writes) == 1
    reread = JobLedger(tmp_path / "fleet.json")
    reread.load()
    assert reread.get("job-1#1") == replace(applying, stage=JobStage.REPORTED, status="SUCCEEDED")
    assert reread.group_arns == {"thinggroup/a": "arn:1"}
    assert reread.last_deployment == {"status": "SUCCEEDED"}


def test_an_execution_just_begun_is_written_with_the_next_change_only(tmp_path: Path) -> None:
    """A restart forgets an execution that was not submitted, so its start costs no write of its own."""
    path = tmp_path / "fleet.json"
    ledger = JobLedger(path)
    begun = ledger.begin(entry("job-1#1"))

    assert not path.exists()
    ledger.update(begun, stage=JobStage.APPLYING, deployment_id="d-1")
    reread = JobLedger(path)
    reread.load()
    assert reread.get("job-1#1") == replace(begun, stage=JobStage.APPLYING, deployment_id="d-1")
