"""API shapes of drift monitors, drift events and promotion (camelCase on the wire).

A monitor's ``window``, ``interval`` and ``retrainWindow`` are durations (``30s``, ``15m``, ``1h``, ``7d``; see
:func:`edgewise.cloud.telemetry.query.parse_duration`); ``PUT`` replaces the whole monitor, fields left out
taking their defaults.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from edgewise.cloud.models.schemas import ALIAS_MAX_LENGTH, ALIAS_PATTERN
from edgewise.cloud.telemetry.query import DURATION_PATTERN
from edgewise.cloud.telemetry.records import STREAM_MAX_LENGTH
from edgewise.protocol.capture import DEFAULT_CAPTURE_STREAM

#: The stream the inference component captures into unless its configuration names another.
DEFAULT_ALIAS: Final = "champion"
CHALLENGER: Final = "challenger"
#: edgewise.ml.drift's defaults, repeated so that the API imports without numpy.
DEFAULT_PSI_THRESHOLD: Final = 0.2
DEFAULT_P_VALUE: Final = 0.01
#: The most capture records one check reads (the newest of its window).
MAX_CHECK_ROWS: Final = 10_000

AliasName = Annotated[str, Field(min_length=1, max_length=ALIAS_MAX_LENGTH, pattern=ALIAS_PATTERN)]
Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=16)]


class _Shape(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class _Request(_Shape):
    # Not strict: JSON Schema's integers include 91.0, and the API must take what its schema allows.
    model_config = ConfigDict(extra="forbid")


class DriftMonitorSet(_Request):
    """``PUT /models/{name}/drift-monitor``: what is compared, how often, and what confirmed drift does."""

    alias: AliasName = Field(default=DEFAULT_ALIAS, description="The alias whose version is monitored")
    stream: Annotated[str, Field(min_length=1, max_length=STREAM_MAX_LENGTH)] = Field(
        default=DEFAULT_CAPTURE_STREAM, description="The telemetry stream capture records arrive on"
    )
    window: Duration = Field(
        default="1h", description="Each check reads the capture records of this long ago"
    )
    min_rows: int = Field(default=100, ge=2, le=MAX_CHECK_ROWS, description="Fewer records: no comparison")
    psi_threshold: float = Field(default=DEFAULT_PSI_THRESHOLD, gt=0, le=100)
    p_value: float = Field(default=DEFAULT_P_VALUE, gt=0, lt=1)
    interval: Duration = Field(default="5m", description="How often the cloud checks")
    confirm_checks: int = Field(
        default=2, ge=1, le=100, description="Consecutive drifted checks that confirm drift"
    )
    retrain: bool = Field(default=False, description="Confirmed drift queues a retraining (a challenger)")
    retrain_window: Duration | None = Field(
        default=None, description="The telemetry a retraining dataset is built from; default: window"
    )
    auto_promote: bool = Field(
        default=False, description="A challenger scoring at least the champion's score becomes champion"
    )
    enabled: bool = True


class DriftMonitorPublic(_Shape):
    """A model's drift monitor, and where its checks stand."""

    model_name: str
    alias: str
    stream: str
    window: str
    min_rows: int
    psi_threshold: float
    p_value: float
    interval: str
    confirm_checks: int
    retrain: bool
    retrain_window: str | None
    auto_promote: bool
    enabled: bool
    drifted_checks: int = Field(description="Consecutive drifted checks of the monitored version so far")
    last_checked_at: datetime.datetime | None
    next_check_at: datetime.datetime | None = Field(description="None while disabled")
    updated_at: datetime.datetime
    updated_by: str


class DriftEventPublic(_Shape):
    """One drift check: what it compared and what followed."""

    id: int
    model_name: str
    version: str
    alias: str
    checked_at: datetime.datetime
    rows: int = Field(description="Capture records the check read")
    drifted: bool
    confirmed: bool
    drifted_features: list[str]
    report: dict[str, Any] = Field(
        description="The comparison (drifted, driftedFeatures, psiThreshold, pValue, missing, and features: per "
        "feature and __score__, psi, ksStatistic, pValue, drifted, referenceCount, currentCount); empty when not "
        "compared"
    )
    note: str | None
    retraining_job_id: str | None
    challenger_version: str | None
    promoted: bool


class DriftEventsPublic(_Shape):
    """A page of drift events, newest first, and how many match."""

    data: list[DriftEventPublic]
    count: int


class PromoteRequest(_Request):
    """``POST /models/{name}/promote``: point ``to`` at the version ``from`` points at."""

    from_alias: AliasName = Field(default=CHALLENGER, alias="from")
    to_alias: AliasName = Field(default=DEFAULT_ALIAS, alias="to")


class PromotionPublic(_Shape):
    """A promotion: ``to`` now points at ``version`` (it pointed at ``previousVersion``)."""

    model_name: str
    from_alias: str = Field(alias="from")
    to_alias: str = Field(alias="to")
    version: str
    previous_version: str | None
    actor: str
    created_at: datetime.datetime
