"""Deployment records: status, timestamps and failure reasons, kept on disk across restarts."""

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

#: How many finished deployments are kept; the oldest are pruned first.
HISTORY_LIMIT = 100


class DeploymentStatus(StrEnum):
    """Where a deployment is (IPC ``DeploymentStatus``)."""

    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"

    @property
    def is_final(self) -> bool:
        return self in (DeploymentStatus.SUCCEEDED, DeploymentStatus.FAILED, DeploymentStatus.CANCELED)


class DetailedStatus(StrEnum):
    """How a finished deployment ended (IPC ``DetailedDeploymentStatus``)."""

    SUCCESSFUL = "SUCCESSFUL"
    FAILED_NO_STATE_CHANGE = "FAILED_NO_STATE_CHANGE"
    FAILED_ROLLBACK_NOT_REQUESTED = "FAILED_ROLLBACK_NOT_REQUESTED"
    FAILED_ROLLBACK_COMPLETE = "FAILED_ROLLBACK_COMPLETE"
    FAILED_UNABLE_TO_ROLLBACK = "FAILED_UNABLE_TO_ROLLBACK"
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class DeploymentRecord:
    """One deployment as the history keeps it."""

    deployment_id: str
    created_ms: int
    status: DeploymentStatus
    document: Mapping[str, Any] = field(default_factory=dict)
    detailed_status: DetailedStatus | None = None
    failure_cause: str | None = None
    error_types: tuple[str, ...] = ()
    error_stack: tuple[str, ...] = ()

    def with_status(
        self,
        status: DeploymentStatus,
        detailed: DetailedStatus | None = None,
        *,
        cause: str | None = None,
        error_types: tuple[str, ...] = (),
    ) -> DeploymentRecord:
        """A copy in a new status."""
        return replace(
            self,
            status=status,
            detailed_status=detailed,
            failure_cause=cause,
            error_types=error_types,
            error_stack=(cause,) if cause else (),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "deploymentId": self.deployment_id,
            "createdMs": self.created_ms,
            "status": self.status.value,
            "document": dict(self.document),
            "detailedStatus": self.detailed_status.value if self.detailed_status else None,
            "failureCause": self.failure_cause,
            "errorTypes": list(self.error_types),
            "errorStack": list(self.error_stack),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeploymentRecord:
        detailed = data.get("detailedStatus")
        return cls(
            deployment_id=data["deploymentId"],
            created_ms=int(data["createdMs"]),
            status=DeploymentStatus(data["status"]),
            document=data.get("document") or {},
            detailed_status=DetailedStatus(detailed) if detailed else None,
            failure_cause=data.get("failureCause"),
            error_types=tuple(data.get("errorTypes") or ()),
            error_stack=tuple(data.get("errorStack") or ()),
        )


def write_json_atomically(path: Path, data: Any) -> None:
    """Write JSON so that a crash leaves either the old file or the new one. Blocks."""
    write_atomically(path, json.dumps(data, separators=(",", ":")).encode("utf-8"))


class DeploymentHistory:
    """Every known deployment, one JSON file each under ``directory``. Blocking file I/O; records are small."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, DeploymentRecord] = {}
        for path in directory.glob("*.json"):
            try:
                record = DeploymentRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning("Ignoring unreadable deployment record %s: %s", path, exc)
                continue
            self._records[record.deployment_id] = record

    def save(self, record: DeploymentRecord) -> None:
        self._records[record.deployment_id] = record
        write_json_atomically(self._directory / f"{record.deployment_id}.json", record.to_json())
        self._prune()

    def get(self, deployment_id: str) -> DeploymentRecord | None:
        return self._records.get(deployment_id)

    def list(self) -> list[DeploymentRecord]:
        """Every record, oldest first."""
        return sorted(self._records.values(), key=lambda record: record.created_ms)

    def _prune(self) -> None:
        finished = [record for record in self.list() if record.status.is_final]
        for record in finished[: max(0, len(finished) - HISTORY_LIMIT)]:
            del self._records[record.deployment_id]
            (self._directory / f"{record.deployment_id}.json").unlink(missing_ok=True)
