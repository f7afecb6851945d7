"""``greengrass-cli logs get`` on Edgewise logs: sources, ``--filter`` terms and ``--time-window`` ranges.

Greengrass's ``logs get`` reads the nucleus's JSON log format; Edgewise writes two plain-text formats, and
this module reads both:

- component logs (``ROOT/logs/<name>.log``): ``2026-11-25T19:00:00.123Z [INFO] (Run) hello`` (UTC);
- the runtime's log (``ROOT/logs/edgewise.log``): ``2026-11-25 19:00:00,123 INFO edgewise.runtime.kernel: ...``
  (local time).

A line in neither format (a traceback in the runtime's log) belongs to the entry above it. Filters follow the
Greengrass CLI: terms within one ``--filter`` are ORed, separate ``--filter`` options are ANDed; a term is a
``key=value`` pair or else a keyword / regular expression searched in the whole line. The keys are ``level``
(that level or above: ALL < DEBUG < INFO < WARN < ERROR < FATAL < OFF), ``serviceName`` (the component whose
log it is, ``edgewise`` for the runtime's), ``loggerName`` (the runtime's logger) and ``step`` (a component
log's lifecycle step). Time windows accept the Greengrass forms: dates, times of today, ISO date-times
(local unless they carry ``Z`` or an offset) and offsets from now such as ``-2h15min``; an entry is kept when
it falls in any window.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from edgewise.errors import EdgewiseError

LEVELS = ("ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF")
_LEVEL_ALIASES = {"WARNING": "WARN", "CRITICAL": "FATAL"}
FILTER_KEYS = ("level", "serviceName", "loggerName", "step")
RUNTIME_SERVICE = "edgewise"

_COMPONENT_LINE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z \[(\w+)\] \(([^)]*)\) ")
_RUNTIME_LINE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) (\w+) ([\w.]+): ")
_KEY_VALUE = re.compile(r"([A-Za-z]+)=(.*)")
_OFFSET = re.compile(r"([+-])((?:\d+[a-z]+)+)")
_OFFSET_PART = re.compile(r"(\d+)([a-z]+)")
_OFFSET_UNITS = {
    **dict.fromkeys(("d", "day", "days"), timedelta(days=1)),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), timedelta(hours=1)),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), timedelta(minutes=1)),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), timedelta(seconds=1)),
}
_TIME_OF_DAY = re.compile(r"(\d\d):(\d\d)(?::(\d\d)(?:[.,]?(\d{1,3}))?)?")
_BASIC_DATE = re.compile(r"(\d{4})(\d\d)(\d\d)")


class LogQueryError(EdgewiseError):
    """A ``logs get`` option cannot be used; the message names the option and the value."""


@dataclass(frozen=True)
class LogEntry:
    """One line of a log, with what its line (or the entry it continues) says about it."""

    line: str
    source: Path
    time: datetime | None = None
    level: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


def _level(text: str) -> str | None:
    level = _LEVEL_ALIASES.get(text.upper(), text.upper())
    return level if level in LEVELS else None


def parse_lines(lines: Iterable[str], source: Path, *, previous: LogEntry | None = None) -> list[LogEntry]:
    """The entries of ``lines`` read from ``source``; ``previous`` is the entry before them (when following)."""
    service = RUNTIME_SERVICE if source.name.startswith("edgewise.log") else source.name.partition(".log")[0]
    entries: list[LogEntry] = []
    for raw in lines:
        line = raw.rstrip("\n")
        if match := _COMPONENT_LINE.match(line):
            stamp = datetime.fromisoformat(match[1]).replace(tzinfo=UTC)
            entry = LogEntry(
                line, source, stamp, _level(match[2]), {"serviceName": service, "step": match[3]}
            )
        elif match := _RUNTIME_LINE.match(line):
            stamp = datetime.fromisoformat(f"{match[1]}.{match[2]}").astimezone()
            entry = LogEntry(
                line, source, stamp, _level(match[3]), {"serviceName": service, "loggerName": match[4]}
            )
        elif previous is not None:
            entry = LogEntry(line, source, previous.time, previous.level, previous.fields)
        else:
            entry = LogEntry(line, source, fields={"serviceName": service})
        entries.append(entry)
        previous = entry
    return entries


@dataclass(frozen=True)
class Term:
    """One ``--filter`` term: a ``key=value`` pair, or a regular expression searched in the line."""

    key: str | None
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, entry: LogEntry) -> bool:
        if self.pattern is not None:
            return self.pattern.search(entry.line) is not None
        if self.key == "level":
            return entry.level is not None and LEVELS.index(entry.level) >= LEVELS.index(self.value)
        return entry.fields.get(str(self.key)) == self.value


def parse_filters(values: Sequence[str]) -> list[list[Term]]:
    """``--filter`` values as an AND of ORs.

    Raises:
        LogQueryError: a key Edgewise logs do not have, an unknown level, or an invalid regular expression.
    """
    groups: list[list[Term]] = []
    for value in values:
        group: list[Term] = []
        for text in value.split(","):
            if match := _KEY_VALUE.fullmatch(text):
                key, wanted = match[1], match[2]
                if key not in FILTER_KEYS:
                    raise LogQueryError(
                        f"--filter: Edgewise logs have no key {key!r}; use {', '.join(FILTER_KEYS)}, "
                        "or a keyword or regular expression"
                    )
                if key == "level":
                    level = _level(wanted)
                    if level is None:
                        raise LogQueryError(f"--filter: {wanted!r} is not a level ({', '.join(LEVELS)})")
                    wanted = level
                group.append(Term(key, wanted))
                continue
            try:
                group.append(Term(None, text, re.compile(text)))
            except re.error as exc:
                raise LogQueryError(f"--filter: {text!r} is not a valid regular expression ({exc})") from None
        groups.append(group)
    return groups


def matches(
    entry: LogEntry, filters: Sequence[Sequence[Term]], windows: Sequence[tuple[datetime, datetime]]
) -> bool:
    """Whether ``entry`` passes every filter group and falls in one of the windows (when there are any)."""
    if windows and (entry.time is None or not any(begin <= entry.time <= end for begin, end in windows)):
        return False
    return all(any(term.matches(entry) for term in group) for group in filters)


def parse_instant(text: str, now: datetime) -> datetime:
    """One end of a ``--time-window``; empty means ``now`` (an aware local time).

    Raises:
        LogQueryError: the text is in none of the accepted forms.
    """
    text = text.strip()
    if not text:
        return now
    if match := _OFFSET.fullmatch(text):
        total = timedelta()
        for amount, unit in _OFFSET_PART.findall(match[2]):
            if unit not in _OFFSET_UNITS:
                raise LogQueryError(f"--time-window: {unit!r} in {text!r} is not a unit (d, h, min or s)")
            total += int(amount) * _OFFSET_UNITS[unit]
        return now + total if match[1] == "+" else now - total
    if match := _TIME_OF_DAY.fullmatch(text):
        hour, minute, second, milli = match.groups()
        try:
            of_day = time(int(hour), int(minute), int(second or 0), int((milli or "0").ljust(3, "0")) * 1000)
        except ValueError as exc:
            raise LogQueryError(f"--time-window: {text!r} is not a time of day ({exc})") from None
        return datetime.combine(now.date(), of_day).astimezone()
    if match := _BASIC_DATE.fullmatch(text):
        text = f"{match[1]}-{match[2]}-{match[3]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise LogQueryError(
            f"--time-window: cannot read {text!r} as a time; use 2020-07-01, 20200701, 2020-07-01T05:00:00, "
            "2020-07-01T05:00:00Z, 12:00, 12:00:05 or an offset from now such as -2h15min or +5min"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.astimezone()


def parse_time_window(text: str, now: datetime) -> tuple[datetime, datetime]:
    """``BEGIN,END`` (either may be empty, meaning now).

    Raises:
        LogQueryError: no comma, an unreadable time, or BEGIN after END.
    """
    begin_text, comma, end_text = text.partition(",")
    if not comma:
        raise LogQueryError(f"--time-window: expected BEGIN,END (either may be empty), got {text!r}")
    begin, end = parse_instant(begin_text, now), parse_instant(end_text, now)
    if begin > end:
        raise LogQueryError(f"--time-window: {text!r} begins after it ends")
    return begin, end


def log_sources(files: Sequence[str], directories: Sequence[str]) -> list[Path]:
    """The files to read: each ``--log-file``, and each file of a ``--log-dir`` whose name contains "log".

    ``.../greengrass.log``, Greengrass's own log, reads the Edgewise runtime's ``edgewise.log`` beside it
    when it does not exist itself, so that the guide's command lines work unchanged.

    Raises:
        LogQueryError: neither option given, or a file or directory that does not exist.
    """
    if not files and not directories:
        raise LogQueryError("logs get: give at least one --log-file or --log-dir")
    sources: list[Path] = []
    for text in files:
        path = Path(text).expanduser()
        if path.name == "greengrass.log" and not path.exists() and (path.parent / "edgewise.log").is_file():
            path = path.parent / "edgewise.log"
        if not path.is_file():
            raise LogQueryError(f"--log-file: {path} is not a file")
        sources.append(path)
    for text in directories:
        directory = Path(text).expanduser()
        if not directory.is_dir():
            raise LogQueryError(f"--log-dir: {directory} is not a directory")
        sources.extend(sorted(path for path in directory.iterdir() if "log" in path.name and path.is_file()))
    return list(dict.fromkeys(sources))


def read_entries(
    sources: Sequence[Path], *, complete_only: bool = False
) -> tuple[list[LogEntry], dict[Path, int]]:
    """Every entry of ``sources``, merged in time order (each file's own order kept for equal times), and how
    many bytes of each file they cover. ``complete_only`` leaves out a last line still being written, so that
    following starts exactly after what was read."""
    entries: list[LogEntry] = []
    positions: dict[Path, int] = {}
    for path in sources:
        data = path.read_bytes()
        if complete_only:
            data = data[: data.rfind(b"\n") + 1]
        positions[path] = len(data)
        entries.extend(parse_lines(data.decode("utf-8", errors="replace").splitlines(), path))
    oldest = datetime.min.replace(tzinfo=UTC)
    if len(sources) > 1:
        entries.sort(key=lambda entry: entry.time or oldest)
    return entries, positions


def select(entries: Sequence[LogEntry], keep: Sequence[bool], *, before: int, after: int) -> list[LogEntry]:
    """The kept entries with ``before`` / ``after`` lines of context, each line once."""
    chosen: set[int] = set()
    for index, kept in enumerate(keep):
        if kept:
            chosen.update(range(max(0, index - before), min(len(entries), index + after + 1)))
    return [entries[index] for index in sorted(chosen)]
