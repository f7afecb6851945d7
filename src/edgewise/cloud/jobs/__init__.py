"""Jobs: AWS IoT Jobs for the fleet. Jobs with rollout, abort, timeout and retry configuration (REST API and
Python API in :mod:`~edgewise.cloud.jobs.service`), the engine that rolls them out, the MQTT worker that speaks
the Jobs protocol to devices, and :class:`JobEvents` to be told about execution changes."""

from __future__ import annotations

from edgewise.cloud.jobs.engine import JobEngine as JobEngine
from edgewise.cloud.jobs.events import ExecutionChange as ExecutionChange
from edgewise.cloud.jobs.events import JobChange as JobChange
from edgewise.cloud.jobs.events import JobEvents as JobEvents
from edgewise.cloud.jobs.events import JobStatusChange as JobStatusChange
from edgewise.cloud.jobs.models import ExecutionStatus as ExecutionStatus
from edgewise.cloud.jobs.models import Job as Job
from edgewise.cloud.jobs.models import JobExecution as JobExecution
from edgewise.cloud.jobs.models import JobStatus as JobStatus
from edgewise.cloud.jobs.models import TargetSelection as TargetSelection
from edgewise.cloud.jobs.schemas import AbortConfig as AbortConfig
from edgewise.cloud.jobs.schemas import JobCreate as JobCreate
from edgewise.cloud.jobs.schemas import RetryConfig as RetryConfig
from edgewise.cloud.jobs.schemas import RolloutConfig as RolloutConfig
from edgewise.cloud.jobs.schemas import TimeoutConfig as TimeoutConfig
from edgewise.cloud.jobs.service import cancel_job as cancel_job
from edgewise.cloud.jobs.service import create_job as create_job
from edgewise.cloud.jobs.worker import JobsWorker as JobsWorker

__all__ = [
    "AbortConfig",
    "ExecutionChange",
    "ExecutionStatus",
    "Job",
    "JobChange",
    "JobCreate",
    "JobEngine",
    "JobEvents",
    "JobExecution",
    "JobStatus",
    "JobStatusChange",
    "JobsWorker",
    "RetryConfig",
    "RolloutConfig",
    "TargetSelection",
    "TimeoutConfig",
    "cancel_job",
    "create_job",
]
