"""The built-in ``aws.greengrass.LogManager``: uploads the runtime's log files to the Edgewise cloud while it is
deployed (docs/runtime.md, "Logs to the cloud").

Like the built-in stream manager (:mod:`edgewise.runtime.stream_component`), its lifecycle never runs: while the
services tree holds it, :class:`LogComponent` runs a :class:`~edgewise.runtime.log_upload.LogUploader` with the
component's configuration in Greengrass's keys (:func:`parse_log_settings`), and restarts it when the
configuration changes. A configuration that cannot be used is logged naming its key, and whatever ran before keeps
running. Without a cloud link the component logs one error and idles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from edgewise.errors import EdgewiseError
from edgewise.names import COMPONENT_NAME
from edgewise.runtime.builtin_follower import BuiltinFollower

if TYPE_CHECKING:
    from edgewise.protocol.logs import LogLevel
    from edgewise.runtime.cloudlink import CloudLink
    from edgewise.runtime.config import ConfigStore
    from edgewise.runtime.log_upload import CloudLogChannel, UploadRule
    from edgewise.runtime.paths import RootPaths

logger = logging.getLogger(__name__)

LOG_MANAGER: Final = "aws.greengrass.LogManager"
UPLOADER: Final = "logsUploaderConfiguration"
SYSTEM_LOGS: Final = "systemLogsConfiguration"
COMPONENT_MAP: Final = "componentLogsConfigurationMap"
COMPONENT_LIST: Final = "componentLogsConfiguration"
INTERVAL: Final = "periodicUploadIntervalSec"
DEFAULT_INTERVAL: Final = 300.0
#: Keys of Greengrass's log manager that mean nothing here, accepted so that its deployments apply.
IGNORED_KEYS: Final = ("deprecatedVersionSupport",)
_UNITS: Final[Mapping[str, int]] = {"KB": 1024, "MB": 1024**2, "GB": 1024**3}
_FILE_KEYS: Final = (
    "minimumLogLevel",
    "diskSpaceLimit",
    "diskSpaceLimitUnit",
    "deleteLogFileAfterCloudUpload",
)
_CHECKPOINT: Final = "checkpoints.json"


class LogConfigurationError(EdgewiseError):
    """A value of the log manager's configuration that cannot be used; ``key`` names it (a path)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{LOG_MANAGER} configuration {key} {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class FileSettings:
    """How one component's (or the system's) log files are uploaded."""

    minimum_level: LogLevel = "INFO"
    disk_space_limit: int | None = None  #: bytes the files may take; None: no limit
    delete_after_upload: bool = False  #: delete rotated files once uploaded


@dataclass(frozen=True)
class LogSettings:
    """What the uploader runs with; a change of any field restarts it."""

    system: FileSettings | None = None  #: None: the system log is not uploaded
    components: tuple[tuple[str, FileSettings], ...] = ()
    interval: float = DEFAULT_INTERVAL


def parse_log_settings(configuration: Any) -> LogSettings:
    """The settings of a configuration in Greengrass's keys (strings such as ``"true"`` and ``"10"``, as
    Greengrass's examples have them, or plain booleans and numbers).

    Raises:
        LogConfigurationError: a value that cannot be used, naming its key.
    """
    if configuration is None:
        configuration = {}
    if not isinstance(configuration, Mapping):
        raise LogConfigurationError("", f"must be an object, not {type(configuration).__name__}")
    _only(configuration, "", (UPLOADER, INTERVAL, *IGNORED_KEYS))
    uploader = configuration.get(UPLOADER) or {}
    if not isinstance(uploader, Mapping):
        raise LogConfigurationError(UPLOADER, "must be an object")
    _only(uploader, UPLOADER, (SYSTEM_LOGS, COMPONENT_MAP, COMPONENT_LIST))
    system: FileSettings | None = None
    system_body = uploader.get(SYSTEM_LOGS)
    if system_body is not None:
        key = f"{UPLOADER}.{SYSTEM_LOGS}"
        if not isinstance(system_body, Mapping):
            raise LogConfigurationError(key, "must be an object")
        _only(system_body, key, ("uploadToCloudWatch", *_FILE_KEYS))
        if _flag(system_body.get("uploadToCloudWatch", False), f"{key}.uploadToCloudWatch"):
            system = _file_settings(system_body, key)
    components: dict[str, FileSettings] = {}
    listed = uploader.get(COMPONENT_LIST)
    if listed is not None:
        if not isinstance(listed, list):
            raise LogConfigurationError(f"{UPLOADER}.{COMPONENT_LIST}", "must be a list")
        for index, body in enumerate(listed):
            key = f"{UPLOADER}.{COMPONENT_LIST}[{index}]"
            if not isinstance(body, Mapping):
                raise LogConfigurationError(key, "must be an object")
            _only(body, key, ("componentName", *_FILE_KEYS))
            components[_component(body.get("componentName"), f"{key}.componentName")] = _file_settings(
                body, key
            )
    mapped = uploader.get(COMPONENT_MAP)
    if mapped is not None:
        if not isinstance(mapped, Mapping):
            raise LogConfigurationError(f"{UPLOADER}.{COMPONENT_MAP}", "must be an object")
        for name, body in mapped.items():
            key = f"{UPLOADER}.{COMPONENT_MAP}.{name}"
            _component(name, key)
            if not isinstance(body, Mapping):
                raise LogConfigurationError(key, "must be an object")
            _only(body, key, _FILE_KEYS)
            components[name] = _file_settings(body, key)
    return LogSettings(
        system=system,
        components=tuple(sorted(components.items())),
        interval=_interval(configuration.get(INTERVAL, DEFAULT_INTERVAL)),
    )


def _only(body: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> None:
    unknown = sorted(str(name) for name in body if name not in allowed)
    if unknown:
        where = f"{key}.{unknown[0]}" if key else unknown[0]
        raise LogConfigurationError(where, f"is not supported (the keys are {', '.join(allowed)})")


def _component(name: Any, key: str) -> str:
    if not isinstance(name, str) or COMPONENT_NAME.fullmatch(name) is None:
        raise LogConfigurationError(key, f"must be a component name, not {name!r}")
    return name


def _file_settings(body: Mapping[str, Any], key: str) -> FileSettings:
    # Imported here: a runtime whose LogManager uploads nothing never loads the log protocol.
    from edgewise.protocol import logs

    level = body.get("minimumLogLevel", "INFO")
    if not isinstance(level, str) or level.strip().upper() not in logs.LEVELS:
        raise LogConfigurationError(
            f"{key}.minimumLogLevel", f"must be one of {', '.join(logs.LEVELS)}, not {level!r}"
        )
    minimum = logs.LEVELS[logs.LEVELS.index(level.strip().upper())]
    unit = body.get("diskSpaceLimitUnit", "KB")
    if not isinstance(unit, str) or unit.strip().upper() not in _UNITS:
        raise LogConfigurationError(f"{key}.diskSpaceLimitUnit", f"must be KB, MB or GB, not {unit!r}")
    limit = _number(body.get("diskSpaceLimit"), f"{key}.diskSpaceLimit")
    return FileSettings(
        minimum_level=minimum,
        disk_space_limit=None if limit is None else int(limit * _UNITS[unit.strip().upper()]),
        delete_after_upload=_flag(
            body.get("deleteLogFileAfterCloudUpload", False), f"{key}.deleteLogFileAfterCloudUpload"
        ),
    )


def _number(value: Any, key: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    if number is None or not 0 < number < 2**53:
        raise LogConfigurationError(key, f"must be a positive number, not {value!r}")
    return number


def _interval(value: Any) -> float:
    number = _number(value, INTERVAL)
    return DEFAULT_INTERVAL if number is None else number


def _flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise LogConfigurationError(key, f"must be true or false, not {value!r}")


class LogComponent:
    """Follows ``aws.greengrass.LogManager`` in the services tree and runs its uploader. Must be used from the
    event loop thread."""

    def __init__(
        self, store: ConfigStore, paths: RootPaths, *, cloud: CloudLink | None = None, thing: str = ""
    ) -> None:
        self._store = store
        self._paths = paths
        self._cloud = cloud
        self._thing = thing
        self._seen: Any = None
        self._settings: LogSettings | None = None
        self._uploading: asyncio.Task[None] | None = None
        self._channel: CloudLogChannel | None = None
        self._follower = BuiltinFollower(store, (LOG_MANAGER,), self._apply_tree, what=LOG_MANAGER)
        self._told_offline = False

    async def start(self) -> None:
        """Serve what the services tree holds now, then follow its changes."""
        await self._follower.start()

    async def close(self) -> None:
        """Stop following the services tree and stop uploading."""
        await self._follower.close()
        await self._stop()

    async def _apply_tree(self) -> None:
        if not self._store.contains(("services", LOG_MANAGER)):
            self._seen = None
            await self._stop()
            return
        configuration = self._store.get(("services", LOG_MANAGER, "configuration"))
        if configuration == self._seen:
            return
        self._seen = configuration
        try:
            settings = parse_log_settings(configuration)
        except LogConfigurationError as error:
            kept = "the running upload keeps its settings" if self._uploading else "no logs are uploaded"
            logger.error("%s; %s", error, kept)
            return
        if settings == self._settings:
            return
        await self._stop()
        if self._cloud is None:
            if not self._told_offline:
                logger.error(
                    "%s cannot upload logs: this device has no cloud connection (no cloud section in its "
                    "configuration file); it idles until the runtime runs with one",
                    LOG_MANAGER,
                )
                self._told_offline = True
            return
        self._run(settings, self._cloud)

    def _rules(self, settings: LogSettings) -> list[UploadRule]:
        from edgewise.protocol import logs
        from edgewise.runtime.log_upload import LogSource, UploadRule

        chosen = [(logs.SYSTEM, self._paths.runtime_log, settings.system)] if settings.system else []
        chosen += [(name, self._paths.component_log(name), file) for name, file in settings.components]
        return [
            UploadRule(
                LogSource(component, path, file.minimum_level),
                delete_uploaded=file.delete_after_upload,
                disk_space_limit=file.disk_space_limit,
            )
            for component, path, file in chosen
            if file is not None
        ]

    def _run(self, settings: LogSettings, cloud: CloudLink) -> None:
        from edgewise.runtime.log_upload import Checkpoint, CloudLogChannel, LogUploader

        self._channel = CloudLogChannel(cloud, self._thing)
        checkpoint = Checkpoint(self._paths.component_work(LOG_MANAGER) / _CHECKPOINT)
        uploader = LogUploader(self._rules(settings), checkpoint, self._channel, interval=settings.interval)
        self._settings = settings
        self._uploading = asyncio.create_task(uploader.run(), name="log-upload")
        logger.info(
            "%s uploads %s every %g s",
            LOG_MANAGER,
            ", ".join(rule.source.component for rule in uploader.rules) or "nothing",
            settings.interval,
        )

    async def _stop(self) -> None:
        uploading, self._uploading = self._uploading, None
        self._settings = None
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if uploading is None:
            return
        uploading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await uploading
        logger.info("%s stopped uploading logs", LOG_MANAGER)
