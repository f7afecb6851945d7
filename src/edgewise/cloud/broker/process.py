"""The managed Mosquitto process: start when it accepts TLS, stop, reload, restart after a crash, and
disconnect a device.

What a reload (SIGHUP) does in Mosquitto 2.0.11 (``loop.c``, ``security_default.c``): it re-reads the
configuration, the password file and the ACL file and applies them to the clients already connected, without
dropping them; it rebuilds the TLS context of a listener with ``crlfile`` and ``require_certificate``, so the
new CRL refuses new handshakes. A connection already established with a certificate revoked since is *not*
dropped, which is why :meth:`MosquittoBroker.disconnect` exists: it connects to the worker listener with the
device's client id, and Mosquitto closes the older connection of that id (session takeover), which also
discards the device's session. Revoke in that order: write CRL and ACL, :meth:`reload`, then :meth:`disconnect`,
so the device cannot reconnect in between. The dynamic-security plugin could kick clients too, but it kicks
every client of a role whenever the role changes (each policy edit would drop devices) and it never sees
certificate-authenticated clients at connect time, so the ACL file is what we render.

Mosquitto does not outlive the process that started it. It runs in its own session, so a Ctrl-C at the terminal
reaches only ``cloud up``, which stops it in order; and it is started through a small exec wrapper (the
interpreter running :data:`_EXEC_WITH_PARENT_DEATH_SIGNAL`) that sets ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` and
then execs Mosquitto, so the kernel sends it SIGTERM when the starting thread (the event loop's) dies, even by
SIGKILL. A wrapper rather than ``preexec_fn``, which may deadlock in a process with threads, and rather than
``setpriv --pdeathsig``, which cannot tell that the parent died before the signal was set (the wrapper
compares ``getppid()`` with the pid it was given). Whatever escapes the signal (a Mosquitto that switched user)
is found through the pid file in the data directory and stopped at the next start (:mod:`.orphans`). Before
Mosquitto starts, its ports are bound once to check them, so another process holding one is named as the cause
(along with any Mosquitto still running this data directory's configuration) instead of surfacing later as
workers that cannot connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import logging
import os
import random
import re
import signal
import socket
import ssl
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from edgewise.cloud.broker.config import BrokerSettings, write_config
from edgewise.cloud.broker.errors import (
    BrokerConfigError,
    BrokerControlError,
    BrokerNotRunningError,
    BrokerReloadError,
    BrokerStartError,
)
from edgewise.cloud.broker.orphans import (
    PID_FILE_NAME,
    BrokerRecord,
    processes_running,
    remove_pid_file,
    stop_leftover_broker,
    write_pid_file,
)
from edgewise.names import THING_NAME

logger = logging.getLogger(__name__)

MOSQUITTO = Path("/usr/sbin/mosquitto")
_POLL_INTERVAL = 0.05
_PROBE_TIMEOUT = 2.0
_RELOAD_MARK = "Reloading config."
#: Mosquitto's own errors ("<time>: Error: ..."), not a client's failed handshake ("OpenSSL Error[0]: ...").
_RELOAD_ERROR = re.compile(r"^[^:]*: Error")
_ANY_ADDRESS = ("0.0.0.0", "::")  # noqa: S104 - recognised to probe loopback instead
#: Run as ``python -I -S -c <this> <owner pid> <argv...>``: ask for SIGTERM when the starting thread dies, then
#: exec ``argv``. If the owner already died (``getppid()`` differs), nothing would deliver the signal: exit.
_EXEC_WITH_PARENT_DEATH_SIGNAL = """\
import ctypes, os, signal, sys
PR_SET_PDEATHSIG = 1
owner, argv = int(sys.argv[1]), sys.argv[2:]
if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM)) != 0:
    sys.exit("prctl(PR_SET_PDEATHSIG) failed: " + os.strerror(ctypes.get_errno()))
if os.getppid() != owner:
    sys.exit("the process starting Mosquitto exited before Mosquitto started")
os.execv(argv[0], argv)
"""


class BrokerState(enum.Enum):
    """Where the managed broker is in its life."""

    #: Not started, or stopped on request.
    STOPPED = "stopped"
    #: Started and waiting for the TLS listener to answer.
    STARTING = "starting"
    #: Accepting connections.
    RUNNING = "running"
    #: Exited unexpectedly; waiting out the back-off before starting again.
    RESTARTING = "restarting"
    #: Crashed too often within the restart window; no longer restarted.
    FAILED = "failed"

    @property
    def is_running(self) -> bool:
        return self is BrokerState.RUNNING


@dataclass(frozen=True)
class RestartPolicy:
    """Back-off ``min(base_delay * 2**n, max_delay)`` plus up to 10 % jitter after the n-th crash in a row;
    give up after ``max_crashes`` crashes within ``window`` seconds."""

    base_delay: float = 0.5
    max_delay: float = 30.0
    max_crashes: int = 5
    window: float = 300.0

    def delay(self, crashes: int) -> float:
        delay = min(self.base_delay * 2.0 ** max(crashes - 1, 0), self.max_delay)
        return delay * (1 + random.uniform(0, 0.1))


@dataclass(frozen=True)
class BrokerStatistics:
    state: BrokerState
    pid: int | None
    starts: int
    crashes: int


class MosquittoBroker:
    """A supervised ``mosquitto -c <data_dir>/mosquitto.conf``; use as ``async with`` or start/stop."""

    def __init__(
        self,
        settings: BrokerSettings,
        *,
        executable: Path = MOSQUITTO,
        restart_policy: RestartPolicy | None = None,
        start_timeout: float = 20.0,
        stop_grace: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._executable = executable
        self._policy = restart_policy or RestartPolicy()
        self._start_timeout = start_timeout
        self._stop_grace = stop_grace
        self._clock = clock
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._state = BrokerState.STOPPED
        self._starts = 0
        self._crashes: deque[float] = deque()
        self._crash_total = 0

    async def __aenter__(self) -> MosquittoBroker:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def statistics(self) -> BrokerStatistics:
        process = self._process
        pid = process.pid if process is not None and process.returncode is None else None
        return BrokerStatistics(self._state, pid, self._starts, self._crash_total)

    @property
    def pid_file(self) -> Path:
        """Where the running broker's pid and its owner's are recorded, for the next start to check."""
        return self.settings.data_dir / PID_FILE_NAME

    @property
    def argv(self) -> list[str]:
        """Mosquitto's command line; the wrapper execs exactly this."""
        return [str(self._executable), "-c", str(self.settings.config_file)]

    async def start(self) -> None:
        """Stop a broker an earlier run on this data directory left, write the configuration, start Mosquitto
        and return once its TLS listener answers.

        Raises:
            BrokerStartError: a broker of another live process uses this data directory; another process holds
                one of the ports; Mosquitto exited or did not listen within the start timeout.
        """
        if self._supervisor is not None:
            raise RuntimeError("the broker is already started")
        leftover = await asyncio.to_thread(
            stop_leftover_broker, self.pid_file, self.argv, grace=self._stop_grace
        )
        if leftover is not None:
            logger.warning("broker-leftover-stopped pid=%d", leftover)
        await asyncio.to_thread(write_config, self.settings)
        await self._launch()
        self._supervisor = asyncio.create_task(self._supervise(), name="mosquitto-supervisor")

    async def stop(self) -> None:
        """Stop supervising, then SIGTERM Mosquitto, SIGKILL it after the grace period, and reap it."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise asyncio.CancelledError
        process, self._process = self._process, None
        self._state = BrokerState.STOPPED
        if process is not None:
            terminating = asyncio.ensure_future(self._terminate(process))
            try:
                await asyncio.shield(terminating)
            except asyncio.CancelledError:
                await terminating
                raise
            logger.info("broker-stopped pid=%d exit_code=%s", process.pid, process.returncode)

    async def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads ACL, passwords and CRL; returns once the reload is in force.

        Raises:
            BrokerNotRunningError: the broker is not running.
            BrokerReloadError: Mosquitto logged an error while reloading.
        """
        process = self._running_process()
        log_file = self.settings.log_file
        offset = await asyncio.to_thread(_file_size, log_file)
        process.send_signal(signal.SIGHUP)
        deadline = self._clock() + self._start_timeout
        text = ""
        while _RELOAD_MARK not in text:
            if self._clock() > deadline:
                raise BrokerReloadError(
                    f"Mosquitto (pid {process.pid}) did not log a reload within {self._start_timeout:.0f} s",
                    log_tail=text[-2000:],
                )
            await asyncio.sleep(_POLL_INTERVAL)
            text = await asyncio.to_thread(_read_from, log_file, offset)
        # Mosquitto reloads inside one turn of its event loop, so a handshake it answers after the mark
        # was logged is answered after the new files are in force.
        await self._wait_listening(process, deadline)
        text = await asyncio.to_thread(_read_from, log_file, offset)
        errors = [line for line in text.splitlines() if _RELOAD_ERROR.match(line)]
        if errors:
            raise BrokerReloadError(
                f"Mosquitto (pid {process.pid}) reported errors while reloading", log_tail="\n".join(errors)
            )
        logger.info("broker-reloaded pid=%d", process.pid)

    async def disconnect(self, client_id: str, *, timeout: float = 10.0) -> None:
        """Close the connection and discard the session of the device with ``client_id`` (its thing name).

        Raises:
            BrokerConfigError: ``client_id`` is not a thing name, or there is no worker listener.
            BrokerNotRunningError: the broker is not running.
            BrokerControlError: the worker listener refused or did not answer.
        """
        if not isinstance(client_id, str) or not THING_NAME.fullmatch(client_id):
            raise BrokerConfigError("client_id", f"{client_id!r} is not a thing name")
        workers = self.settings.workers
        if workers is None:
            raise BrokerConfigError("workers", "disconnecting a client needs the worker listener")
        self._running_process()
        await asyncio.to_thread(
            _take_over_session, workers.port, workers.username, workers.password, client_id, timeout
        )
        logger.info("client-disconnected client_id=%s", client_id)

    def _running_process(self) -> asyncio.subprocess.Process:
        process = self._process
        if not self._state.is_running or process is None or process.returncode is not None:
            raise BrokerNotRunningError(f"The broker is {self._state.value}, not running")
        return process

    async def _launch(self) -> None:
        self._state = BrokerState.STARTING
        await asyncio.to_thread(self._check_can_start)
        stderr_path = self.settings.data_dir / "mosquitto.stderr"
        try:
            with stderr_path.open("ab") as stderr:
                process = self._process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-I",
                    "-S",
                    "-c",
                    _EXEC_WITH_PARENT_DEATH_SIGNAL,
                    str(os.getpid()),
                    *self.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=stderr,
                    stderr=stderr,
                    # Its own session: Ctrl-C in the terminal reaches `cloud up`, which stops the broker in
                    # order, instead of reaching Mosquitto directly (which the supervisor would see as a crash).
                    # A kill of the cloud's group still ends it, through the parent-death signal.
                    start_new_session=True,
                )
        except OSError as exc:
            raise BrokerStartError(
                f"Cannot run {self._executable} through {sys.executable}: {exc}", exit_code=None, log_tail=""
            ) from exc
        self._starts += 1
        await asyncio.to_thread(
            write_pid_file, self.pid_file, BrokerRecord(pid=process.pid, owner=os.getpid())
        )
        try:
            await self._wait_listening(process, self._clock() + self._start_timeout)
        except BrokerStartError:
            await self._terminate(process)
            raise
        self._state = BrokerState.RUNNING
        logger.info(
            "broker-started pid=%d port=%d workers_port=%s",
            process.pid,
            self.settings.devices.port,
            self.settings.workers.port if self.settings.workers else None,
        )

    def _check_can_start(self) -> None:
        """Fail before starting Mosquitto if it could not run or listen. Blocks (binds each port once).

        Raises:
            BrokerStartError: the executable is missing, or a port is held by another process.
        """
        if not os.access(self._executable, os.X_OK):
            raise BrokerStartError(
                f"Cannot run {self._executable}: it is missing or not executable", exit_code=None, log_tail=""
            )
        devices, workers = self.settings.devices, self.settings.workers
        listeners = [(devices.host, devices.port, "the devices' MQTT port")]
        if workers is not None:
            listeners.append(("127.0.0.1", workers.port, "the workers' MQTT port"))
        for host, port, what in listeners:
            if not _port_in_use(host, port, what):
                continue
            message = f"Port {port} ({what}) is held by another process, so the broker cannot listen on {host}:{port}"
            leftovers = ", ".join(str(pid) for pid in processes_running(self.argv))
            if leftovers:
                message += (
                    f"; Mosquitto (pid {leftovers}) is running this data directory's configuration, probably "
                    "left by a cloud that ended without stopping it: stop it and start again"
                )
            else:
                message += "; stop that process or choose another port"
            raise BrokerStartError(message, exit_code=None, log_tail="")

    async def _wait_listening(self, process: asyncio.subprocess.Process, deadline: float) -> None:
        devices = self.settings.devices
        host = "127.0.0.1" if devices.host in _ANY_ADDRESS else devices.host
        context = ssl.create_default_context(cafile=str(devices.cafile))
        context.check_hostname = False  # the server certificate names the public endpoint, not loopback
        while True:
            if process.returncode is not None:
                raise BrokerStartError(
                    f"Mosquitto exited with code {process.returncode} before listening on port {devices.port}",
                    exit_code=process.returncode,
                    log_tail=await asyncio.to_thread(self._log_tail),
                )
            if await asyncio.to_thread(_tls_answers, host, devices.port, context):
                return
            if self._clock() > deadline:
                raise BrokerStartError(
                    f"Mosquitto (pid {process.pid}) did not answer TLS on port {devices.port} "
                    f"within {self._start_timeout:.0f} s",
                    exit_code=None,
                    log_tail=await asyncio.to_thread(self._log_tail),
                )
            await asyncio.sleep(_POLL_INTERVAL)

    async def _supervise(self) -> None:
        while True:
            process = self._process
            assert process is not None
            exit_code = await process.wait()
            now = self._clock()
            self._crash_total += 1
            self._crashes.append(now)
            while self._crashes and now - self._crashes[0] > self._policy.window:
                self._crashes.popleft()
            if len(self._crashes) > self._policy.max_crashes:
                self._state = BrokerState.FAILED
                logger.error(
                    "broker-failed exit_code=%d crashes=%d window_s=%.0f",
                    exit_code,
                    len(self._crashes),
                    self._policy.window,
                )
                return
            delay = self._policy.delay(len(self._crashes))
            self._state = BrokerState.RESTARTING
            logger.warning("broker-exited exit_code=%d restart_in_s=%.2f", exit_code, delay)
            await asyncio.sleep(delay)
            try:
                await self._launch()
            except BrokerStartError:
                logger.exception("broker-restart-failed")

    async def _terminate(self, process: asyncio.subprocess.Process) -> None:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), self._stop_grace)
            except TimeoutError:
                logger.warning("broker-kill pid=%d grace_s=%.1f", process.pid, self._stop_grace)
                process.kill()
        await process.wait()
        await asyncio.to_thread(remove_pid_file, self.pid_file, process.pid)

    def _log_tail(self) -> str:
        """The end of Mosquitto's log and of its own output (config errors go there). Blocks."""
        parts = []
        for path in (self.settings.data_dir / "mosquitto.stderr", self.settings.log_file):
            if path.exists():
                parts.append(path.read_text(encoding="utf-8", errors="replace")[-2000:])
        return "\n".join(parts).strip()


def _port_in_use(host: str, port: int, what: str) -> bool:
    """Whether another process holds ``host``:``port``: bound as Mosquitto will (with SO_REUSEADDR), then let
    go. Blocks.

    Raises:
        BrokerStartError: the address cannot be bound for another reason (not local, not permitted).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise BrokerStartError(
                f"The broker cannot listen on {host}:{port} ({what}): {exc.strerror}",
                exit_code=None,
                log_tail="",
            ) from exc
    return False


def _file_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _read_from(path: Path, offset: int) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as stream:
        stream.seek(offset)
        return stream.read().decode("utf-8", errors="replace")


def _tls_answers(host: str, port: int, context: ssl.SSLContext) -> bool:
    """True once a TLS server with a certificate from our CA answers on ``port``. Blocks.

    The probe has no client certificate, so the handshake may end in an alert: that still proves the
    listener's TLS is up. A server certificate the CA did not sign is a configuration error.
    """
    try:
        with (
            socket.create_connection((host, port), timeout=_PROBE_TIMEOUT) as raw,
            context.wrap_socket(raw) as tls,
        ):
            tls.do_handshake()
    except ssl.SSLCertVerificationError as exc:
        raise BrokerStartError(
            f"The broker's certificate on port {port} does not verify against the CA: {exc.verify_message}",
            exit_code=None,
            log_tail="",
        ) from exc
    except ssl.SSLError:
        return True
    except OSError:
        return False
    return True


def _take_over_session(port: int, username: str, password: str, client_id: str, timeout: float) -> None:
    """Connect to the worker listener as ``client_id`` with a clean start, then leave. Blocks."""
    reasons: list[ReasonCode] = []
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.username_pw_set(username, password)
    client.on_connect = lambda _client, _userdata, _flags, reason, _properties: reasons.append(reason)
    try:
        client.connect("127.0.0.1", port, keepalive=10, clean_start=True)
        deadline = time.monotonic() + timeout
        while not reasons and time.monotonic() < deadline:
            client.loop(timeout=_POLL_INTERVAL)
        if not reasons:
            raise BrokerControlError(
                f"The worker listener on port {port} did not answer within {timeout:.0f} s",
                client_id=client_id,
            )
        if reasons[0].is_failure:
            raise BrokerControlError(
                f"The worker listener on port {port} refused user {username!r}: {reasons[0]}",
                client_id=client_id,
            )
    except OSError as exc:
        raise BrokerControlError(
            f"Cannot reach the worker listener on port {port}: {exc}", client_id=client_id
        ) from exc
    finally:
        # Without a network thread paho writes DISCONNECT at once and closes the socket after it.
        client.disconnect()
