"""The agent's own records, in ``ROOT/deployments/fleet.json``: which job execution became which deployment and
how far its report got, the configuration each group last deployed, and the last deployment's result.

A runtime killed mid-deployment reads them on start: an execution whose deployment was submitted is reported
once the deployment service has finished it (the service takes it up again, downloads included); one not yet
submitted starts over when the cloud offers it again; one already reported is not applied twice. Written with
``write_atomically`` (a few hundred bytes), from the event loop, after every change but the start of an execution,
which a restart would forget anyway: three writes per deployment (submitted, reported, confirmed).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from edgewise.runtime.files import write_atomically

logger = logging.getLogger(__name__)

#: Finished executions remembered (to recognise one the cloud offers again before it got our report).
FINISHED_LIMIT = 100


class JobStage(StrEnum):
    """How far the agent got with one job execution."""

    #: received (IN_PROGRESS in the cloud), its document being checked; nothing submitted yet
    PREPARING = "PREPARING"
    APPLYING = "APPLYING"  #: submitted to the deployment service
    REPORTED = "REPORTED"  #: its final status is in the cloud link's spool (or delivered; see ``confirmed``)
    CANCELED = "CANCELED"  #: cancelled in the cloud; nothing to report

    @property
    def is_finished(self) -> bool:
        return self in (JobStage.REPORTED, JobStage.CANCELED)


@dataclass(frozen=True)
class JobEntry:
    """One job execution the agent handled."""

    key: str  #: ``<jobId>#<executionNumber>``
    job_id: str
    execution_number: int | None
    version: int
    stage: JobStage
    deployment_id: str | None = None
    group: str | None = None
    configuration_arn: str | None = None
    status: str | None = None  #: the job status reported (SUCCEEDED, FAILED)
    details: Mapping[str, str] = field(default_factory=dict)  #: the statusDetails reported
    sequence: int = 0  #: order of arrival, for pruning
    #: The cloud holds the final status: it accepted the report, or showed the execution final already. A
    #: confirmed execution is never reported again, whatever a late answer says.
    confirmed: bool = False

    def to_json(self) -> dict[str, Any]:
        # Shallow (every field but ``details`` is a plain value): asdict's deep copy was most of the CPU of
        # saving the ledger, which happens several times per deployment.
        return {**vars(self), "stage": self.stage.value, "details": dict(self.details)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobEntry:
        return cls(**{**data, "stage": JobStage(data["stage"]), "details": dict(data.get("details") or {})})


class JobLedger:
    """The persisted records. Blocking writes of a small file; call from the event loop."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._jobs: dict[str, JobEntry] = {}
        self._group_arns: dict[str, str] = {}
        self._last_deployment: dict[str, Any] | None = None
        self._sequence = 0

    def load(self) -> None:
        """Read the file if there is one; an unreadable one is logged and set aside. Blocks."""
        if not self._path.exists():
            return
        try:
            data = json.loads(self._path.read_text("utf-8"))
            jobs = [JobEntry.from_json(entry) for entry in data.get("jobs", [])]
            self._group_arns = {str(k): str(v) for k, v in (data.get("groupArns") or {}).items()}
            self._last_deployment = data.get("lastDeployment")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = self._path.with_name(f"{self._path.name}.unreadable")
            logger.error(
                "Ignoring the unreadable fleet job records %s (%s); moved to %s", self._path, exc, aside
            )
            self._path.replace(aside)
            return
        self._jobs = {entry.key: entry for entry in jobs}
        self._sequence = max((entry.sequence for entry in jobs), default=0)

    def _save(self) -> None:
        data = {
            "jobs": [entry.to_json() for entry in sorted(self._jobs.values(), key=lambda e: e.sequence)],
            "groupArns": self._group_arns,
            "lastDeployment": self._last_deployment,
        }
        write_atomically(self._path, json.dumps(data, separators=(",", ":")).encode("utf-8"))

    # -- jobs -----------------------------------------------------------------------------------------------

    def get(self, key: str) -> JobEntry | None:
        return self._jobs.get(key)

    def unconfirmed(self) -> list[JobEntry]:
        """Entries reported but not confirmed by the cloud yet, oldest first."""
        return sorted(
            (
                entry
                for entry in self._jobs.values()
                if entry.stage is JobStage.REPORTED and not entry.confirmed
            ),
            key=lambda e: e.sequence,
        )

    def unfinished(self) -> list[JobEntry]:
        """Entries not yet reported or cancelled, oldest first."""
        return sorted(
            (entry for entry in self._jobs.values() if not entry.stage.is_finished), key=lambda e: e.sequence
        )

    def begin(self, entry: JobEntry) -> JobEntry:
        """Record a new execution (or a fresh start of one), as the newest: in memory only, since a restart
        forgets an execution that was not submitted yet anyway; the next change writes it."""
        self._sequence += 1
        entry = replace(entry, sequence=self._sequence)
        self._jobs[entry.key] = entry
        self._prune()
        return entry

    def update(self, entry: JobEntry, **changes: Any) -> JobEntry:
        entry = replace(entry, **changes)
        self._jobs[entry.key] = entry
        self._save()
        return entry

    def forget(self, key: str) -> None:
        if self._jobs.pop(key, None) is not None:
            self._save()

    def _prune(self) -> None:
        finished = sorted(
            (entry for entry in self._jobs.values() if entry.stage.is_finished), key=lambda e: e.sequence
        )
        for entry in finished[: max(0, len(finished) - FINISHED_LIMIT)]:
            del self._jobs[entry.key]

    # -- what fleet status reports ------------------------------------------------------------------------

    @property
    def group_arns(self) -> dict[str, str]:
        """The configuration ARN each group last deployed."""
        return dict(self._group_arns)

    @property
    def last_deployment(self) -> dict[str, Any] | None:
        """The ``deploymentInformation`` of the last fleet deployment that finished."""
        return None if self._last_deployment is None else dict(self._last_deployment)

    def finish(
        self, entry: JobEntry, *, status: str, details: Mapping[str, str], information: Mapping[str, Any]
    ) -> JobEntry:
        """Record the final ``status`` reported for ``entry`` (unconfirmed) and the deployment it finished
        (``information``), in one write: a success makes the entry's configuration its group's."""
        entry = replace(entry, stage=JobStage.REPORTED, status=status, details=details, confirmed=False)
        self._jobs[entry.key] = entry
        if status == "SUCCEEDED" and entry.group and entry.configuration_arn:
            self._group_arns[entry.group] = entry.configuration_arn
        self._last_deployment = dict(information)
        self._save()
        return entry
