"""The local MQTT broker for client devices: a Mosquitto 2 the runtime starts, configures and reloads.

Mosquitto listens on loopback only, on a free port chosen at each start; client devices reach it through the gate
(:mod:`.gate`), which checks their certificates and CONNECT and then logs them in as their thing. Mosquitto itself
authenticates every connection by user name and password (``allow_anonymous false``) and authorizes every packet
with an ACL file rendered from the Auth policies:

- ``@bridge`` (:class:`LocalBrokerAccess`), the privileged login of the bridge, may use every topic;
- each authorized client device has a user named after its thing (``:``, which Mosquitto's password file cannot
  hold and thing names may, becomes ``.``, which thing names never have), a random password made for this run,
  and the ACL lines of its policies.

When the devices or their policies change, the files are rewritten and Mosquitto is sent SIGHUP; it re-reads
them and applies the new ACL to the clients already connected. Mosquitto logs to its standard error, which the
broker reads: that is how a start (``running``) and a reload (``Reloading config.``) are known to be complete.
It runs in its own process group and carries the runtime's IPC socket path in its environment, so that a runtime
that was killed has its Mosquitto ended by the next one (:mod:`edgewise.runtime.orphans`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import secrets
import shutil
import signal
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from edgewise.errors import EdgewiseError
from edgewise.runtime.files import write_atomically

logger = logging.getLogger(__name__)

#: The Debian package that provides the ``mosquitto`` binary.
PACKAGE: Final = "mosquitto"
BRIDGE_USER: Final = "@bridge"
#: What the broker holds for one client (the bridge, behind a burst) before it drops QoS 1 messages.
MAX_QUEUED_MESSAGES: Final = 100_000
MAX_QUEUED_BYTES: Final = 64 * 1024 * 1024
#: Mosquitto's default for ``mosquitto_passwd``; the passwords are random, not a human's.
_ITERATIONS: Final = 101
_SALT_BYTES: Final = 12
_RUNNING: Final = " running"
_RELOADED: Final = "Reloading config."
_START_TIMEOUT: Final = 20.0
_STOP_GRACE: Final = 5.0
_START_ATTEMPTS: Final = 3


class LocalBrokerError(EdgewiseError):
    """The local Mosquitto cannot be started or reloaded (``mosquitto`` missing, exited, did not answer)."""


@dataclass(frozen=True)
class LocalBrokerAccess:
    """A privileged login on the local broker (plain TCP, loopback only) that may publish and subscribe every
    topic; the bridge connects with it."""

    host: str
    port: int
    username: str
    password: str


def broker_username(thing_name: str) -> str:
    """The Mosquitto user a client device is logged in as."""
    return thing_name.replace(":", ".")


def hash_password(password: str) -> str:
    """``password`` in Mosquitto 2's password-file format (``$7$`` PBKDF2-SHA512)."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, _ITERATIONS)
    return f"$7${_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def find_mosquitto(search_path: str | None = None) -> str:
    """The ``mosquitto`` executable on ``search_path`` (``PATH`` and ``/usr/sbin`` by default).

    Raises:
        LocalBrokerError: there is none, naming the package to install.
    """
    if search_path is None:
        search_path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    executable = shutil.which("mosquitto", path=search_path)
    if executable is None:
        raise LocalBrokerError(
            f"The local MQTT broker needs Mosquitto 2, and no 'mosquitto' executable is installed: install the "
            f"{PACKAGE!r} package (apt-get install {PACKAGE})"
        )
    return executable


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalBroker:
    """One managed Mosquitto, its files in ``directory``. Must be used from the event loop."""

    def __init__(
        self,
        directory: Path,
        *,
        max_packet_size: int,
        orphan_environment: Mapping[str, str],
        executable: str | None = None,
    ) -> None:
        self.directory = directory
        self._max_packet_size = max_packet_size
        self._environment = dict(orphan_environment)
        self._executable = executable
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._port = 0
        self._bridge_password = secrets.token_urlsafe(24)
        self._passwords: dict[str, str] = {}
        self._acls: dict[str, tuple[str, ...]] = {}
        self._reloads = 0
        self._seen_reloads = asyncio.Condition()
        self._running = asyncio.Event()
        self._updating = asyncio.Lock()
        self._stopping = False
        #: Set when Mosquitto exits without being asked to.
        self.exited = asyncio.Event()

    @property
    def access(self) -> LocalBrokerAccess:
        """The bridge's login; valid once started."""
        return LocalBrokerAccess("127.0.0.1", self._port, BRIDGE_USER, self._bridge_password)

    def login_of(self, thing_name: str) -> tuple[str, str] | None:
        """The user name and password the gate logs ``thing_name`` in with, or None if it has none."""
        password = self._passwords.get(thing_name)
        return None if password is None else (broker_username(thing_name), password)

    @property
    def pid(self) -> int | None:
        """Mosquitto's process id while it runs."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    @property
    def running(self) -> bool:
        process = self._process
        return process is not None and process.returncode is None and self._running.is_set()

    async def start(self) -> None:
        """Write the files and start Mosquitto on a free loopback port; returns once it listens.

        Raises:
            LocalBrokerError: ``mosquitto`` is not installed, or it did not start.
        """
        executable = self._executable or find_mosquitto()
        self._stopping = False
        last = ""
        for _ in range(_START_ATTEMPTS):
            self._port = await asyncio.to_thread(_free_port)
            await asyncio.to_thread(self._write_files, True)
            try:
                await self._launch(executable)
                logger.info("Local MQTT broker listening on 127.0.0.1:%d", self._port)
                return
            except LocalBrokerError as error:  # another process may have taken the port in between
                last = str(error)
        raise LocalBrokerError(f"Mosquitto did not start after {_START_ATTEMPTS} attempts: {last}")

    async def close(self) -> None:
        """Stop Mosquitto: SIGTERM, SIGKILL after a grace period, always reaped (even when cancelled)."""
        self._stopping = True
        process, self._process = self._process, None
        if process is not None:
            stopping = asyncio.ensure_future(self._terminate(process))
            try:
                await asyncio.shield(stopping)
            except asyncio.CancelledError:
                await stopping
                raise
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        self._running.clear()

    async def _terminate(self, process: asyncio.subprocess.Process) -> None:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), _STOP_GRACE)
        except TimeoutError:
            logger.warning(
                "Mosquitto (pid %d) ignored SIGTERM for %.0f s; killing it", process.pid, _STOP_GRACE
            )
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()

    async def set_devices(self, acls: Mapping[str, Sequence[str]]) -> None:
        """Give exactly the things in ``acls`` a login with those ACL lines; returns once Mosquitto applies it.

        Raises:
            LocalBrokerError: Mosquitto is not running or did not reload.
        """
        async with self._updating:
            wanted = {thing: tuple(lines) for thing, lines in acls.items()}
            if wanted == self._acls and set(wanted) == set(self._passwords):
                return
            self._passwords = {
                thing: self._passwords.get(thing) or secrets.token_urlsafe(24) for thing in wanted
            }
            self._acls = wanted
            await asyncio.to_thread(self._write_files, False)
            await self._reload()

    async def _reload(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            raise LocalBrokerError("Mosquitto is not running")
        async with self._seen_reloads:
            expected = self._reloads + 1
            process.send_signal(signal.SIGHUP)
            try:
                async with asyncio.timeout(_START_TIMEOUT):
                    await self._seen_reloads.wait_for(lambda: self._reloads >= expected)
            except TimeoutError:
                raise LocalBrokerError(f"Mosquitto did not reload within {_START_TIMEOUT:.0f} s") from None

    def _write_files(self, with_config: bool) -> None:
        """Render the password, ACL and (at start) configuration files. Blocks (file I/O)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        passwords = {BRIDGE_USER: self._bridge_password}
        passwords |= {broker_username(thing): password for thing, password in self._passwords.items()}
        password_lines = [f"{user}:{hash_password(passwords[user])}\n" for user in sorted(passwords)]
        write_atomically(self._password_file, "".join(password_lines).encode(), mode=0o600)
        acl = [f"user {BRIDGE_USER}", "topic readwrite #", "topic readwrite $aws/#"]
        for thing in sorted(self._acls):
            acl += ["", f"user {broker_username(thing)}", *self._acls[thing]]
        write_atomically(self._acl_file, ("\n".join(acl) + "\n").encode(), mode=0o600)
        if not with_config:
            return
        config = [
            "# Written by the Edgewise runtime at each start of the local broker; edits are lost.",
            "per_listener_settings true",
            "persistence false",
            "log_dest stderr",  # unbuffered, unlike its stdout into a pipe
            "log_timestamp false",
            *(f"log_type {kind}" for kind in ("error", "warning", "notice", "information")),
            f"max_packet_size {self._max_packet_size}",
            "set_tcp_nodelay true",  # a small message must not wait for the peer's delayed ACK
            # The bridge takes at most its Receive Maximum at a time: a burst from client devices waits here.
            f"max_queued_messages {MAX_QUEUED_MESSAGES}",
            f"max_queued_bytes {MAX_QUEUED_BYTES}",
        ]
        if os.geteuid() == 0:
            config.append("user root")  # stay the runtime's user: the files are private to it
        config += [
            f"listener {self._port} 127.0.0.1",
            "allow_anonymous false",
            f"password_file {self._password_file}",
            f"acl_file {self._acl_file}",
        ]
        write_atomically(self._config_file, ("\n".join(config) + "\n").encode(), mode=0o600)

    @property
    def _config_file(self) -> Path:
        return self.directory / "mosquitto.conf"

    @property
    def _password_file(self) -> Path:
        return self.directory / "mosquitto.passwd"

    @property
    def _acl_file(self) -> Path:
        return self.directory / "mosquitto.acl"

    async def _launch(self, executable: str) -> None:
        self._running.clear()
        process = await asyncio.create_subprocess_exec(
            executable,
            "-c",
            str(self._config_file),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **self._environment},
            start_new_session=True,
        )
        self._process = process
        tail: list[str] = []
        self._reader = asyncio.create_task(self._read_log(process, tail), name="mosquitto-log")
        waiting = asyncio.create_task(self._running.wait())
        try:
            done, _ = await asyncio.wait(
                {waiting, self._reader}, timeout=_START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiting.cancel()
        if waiting in done and self._running.is_set():
            return
        await self.close()
        reason = (
            "exited" if process.returncode is not None else f"did not listen within {_START_TIMEOUT:.0f} s"
        )
        raise LocalBrokerError(f"Mosquitto {reason}: {' | '.join(tail[-5:])}")

    async def _read_log(self, process: asyncio.subprocess.Process, tail: list[str]) -> None:
        assert process.stderr is not None
        async for raw in process.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            tail.append(line)
            del tail[:-20]
            if line.endswith(_RUNNING) and line.startswith("mosquitto version"):
                self._running.set()
            elif line == _RELOADED:
                async with self._seen_reloads:
                    self._reloads += 1
                    self._seen_reloads.notify_all()
            logger.debug("mosquitto: %s", line)
        code = await process.wait()
        if not self._stopping and self._running.is_set():
            logger.error("The local MQTT broker exited with code %s: %s", code, " | ".join(tail[-5:]))
            self.exited.set()
        self._running.clear()
