"""The kernel: opens a runtime root, starts the IPC server, the supervisor and the deployment service,
runs the last good set of components, and shuts everything down in stages.

Usage::

    settings = RuntimeSettings(root=Path("/var/lib/edgewise"))
    asyncio.run(Kernel(settings).run())
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from edgewise import GREENGRASS_COMPATIBILITY_VERSION
from edgewise.errors import EdgewiseError
from edgewise.recipe import detect_platform
from edgewise.runtime.clientdevices.component import ClientDevicesComponent
from edgewise.runtime.config import ConfigChange, ConfigStore
from edgewise.runtime.context import RuntimeContext, RuntimeService
from edgewise.runtime.deployment import (
    SERVICES,
    ComponentUpdateDeferral,
    ConfigurationValidation,
    DeploymentService,
)
from edgewise.runtime.files import write_atomically
from edgewise.runtime.greengrass_cli_script import write_greengrass_cli
from edgewise.runtime.ipc.auth import TokenTable
from edgewise.runtime.ipc.authorization import CLI_IDENTITY, Authorizer
from edgewise.runtime.ipc.server import IpcServer
from edgewise.runtime.ipc.services import SERVICE_FACTORIES
from edgewise.runtime.lifecycle import LifecycleSettings, LifecycleSupervisor
from edgewise.runtime.lifecycle.bootstrap import BootstrapAction
from edgewise.runtime.lifecycle.process import reaping_through_pidfds
from edgewise.runtime.lifecycle.spec import ComponentSpec
from edgewise.runtime.log_component import LogComponent
from edgewise.runtime.orphans import kill_orphans
from edgewise.runtime.paths import RootPaths
from edgewise.runtime.secrets import SECRET_MANAGER, SecretsHook, SecretStore, SecretVault
from edgewise.runtime.settings import RuntimeSettings
from edgewise.runtime.specs import build_specs
from edgewise.runtime.stream_component import StreamComponent

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLink, CloudLinkSettings
    from edgewise.runtime.fleet import FleetAgent

logger = logging.getLogger(__name__)

#: Unix socket paths are limited to 107 bytes; longer ones are reached through a relative path.
_MAX_SOCKET_PATH = 107
#: How long the reboot command may take to return (it usually returns at once and the device goes down).
_REBOOT_COMMAND_TIMEOUT = 60.0


class RootBusyError(EdgewiseError):
    """Another runtime already runs on this root."""


def _lock_root(paths: RootPaths) -> int:
    """Hold an exclusive lock on the root for the life of the process. Blocks (file system)."""
    fd = os.open(paths.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RootBusyError(f"Another runtime is already running at {paths.root}") from None
    return fd


class Kernel:
    """One runtime: owns the store, the supervisor, the IPC server and the deployment service."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self.paths = settings.paths
        self.platform = detect_platform(settings.platform_overrides)
        self.tokens = TokenTable()
        self._stop = asyncio.Event()
        #: Set when a Bootstrap step asked for a restart or a reboot: what to do once stopped.
        self.bootstrap_action: BootstrapAction | None = None
        self._followup_scheduled = False
        self._lock = -1
        #: What :meth:`start` opened, closed by :meth:`stop` in reverse order.
        self._started = contextlib.AsyncExitStack()
        self.store: ConfigStore
        self.supervisor: LifecycleSupervisor
        self.deployments: DeploymentService
        self.server: IpcServer
        self.context: RuntimeContext
        self.streams: StreamComponent
        self.services: list[RuntimeService] = []
        self.cloud: CloudLink | None = None
        self.fleet: FleetAgent | None = None

    # -- the environment components see -------------------------------------------------------------

    def component_environment(self, spec: ComponentSpec) -> dict[str, str]:
        """The variables Greengrass sets for every component (``SVCUID``, the IPC socket, ...), for one."""
        token = self.tokens.issue(spec.name)
        socket = str(self.paths.ipc_socket)
        for_component = socket
        if len(socket) > _MAX_SOCKET_PATH:
            for_component = os.path.relpath(socket, self.paths.component_work(spec.name))
        return {
            "SVCUID": token,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": token,
            "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH": socket,
            "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": for_component,
            "AWS_IOT_THING_NAME": self.settings.thing_name,
            "AWS_REGION": self.settings.region,
            "AWS_DEFAULT_REGION": self.settings.region,
            "GGC_VERSION": GREENGRASS_COMPATIBILITY_VERSION,
            "GG_ROOT_CA_PATH": str(self.settings.cloud.root_ca) if self.settings.cloud else "",
            # The runtime's own interpreter, so built-in components (python -m edgewise.components...) run with
            # the edgewise package installed, whatever python is first on PATH.
            "EDGEWISE_PYTHON": sys.executable,
            # STREAM_MANAGER_SERVER_PORT while stream manager is deployed, for the SDK's client.
            **self.streams.environment(),
        }

    # -- reconcile: the stored services tree → the running set ----------------------------------------

    def configuration_of(self, component: str) -> Any:
        return self.store.get(("services", component, "configuration"))

    def reconcile(self, reinstall: Collection[str] = ()) -> None:
        """Make the supervisor run what the store says. Must be called from the event loop."""
        services: Mapping[str, Any] = self.store.get(SERVICES) or {}
        specs = build_specs(services, self.paths, thing_name=self.settings.thing_name)
        self.supervisor.apply(specs, reinstall=reinstall)

    def _on_change(self, change: ConfigChange) -> None:
        self.context.authorizer.invalidate()
        # A deployment changes many nodes at once: reconcile and rewrite effective.yaml once after the burst.
        if self._followup_scheduled:
            return
        self._followup_scheduled = True
        asyncio.get_running_loop().call_soon(self._after_changes)

    def _after_changes(self) -> None:
        self._followup_scheduled = False
        self.reconcile()
        self.store.write_effective(self.paths.effective_config)

    # -- start, run, stop -------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    def request_bootstrap_restart(self, action: BootstrapAction) -> None:
        """A Bootstrap step exited with 100 (restart the runtime) or 101 (reboot the device): stop, then do it."""
        self.bootstrap_action = action
        self.request_stop()

    async def start(self) -> None:
        """Open everything and start the last good set of components.

        A step that fails closes what the steps before it started, in reverse order, and raises.
        """
        async with contextlib.AsyncExitStack() as stack:
            await self._start(stack)
            self._started = stack.pop_all()

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        """The start-up steps; each pushes onto ``stack`` what undoes it.

        :meth:`stop` closes the stack, so the order of the pushes is the shutdown order reversed: fleet agent,
        deployment service, components, IPC server, stream server, services, cloud link, store, pid file, lock.

        The file system work here (directories, the lock, the orphan scan, small files read and written) runs
        on the loop's thread: nothing is served until the components are started, and a worker thread would
        cost more than the work (starting it, handing each call over, and its malloc arena's memory for the
        rest of the process's life).
        """
        self.paths.create()
        self._lock = _lock_root(self.paths)
        stack.callback(os.close, self._lock)
        stack.callback(self.paths.pid_file.unlink, missing_ok=True)
        kill_orphans(self.paths.ipc_socket)
        self.store = ConfigStore.open(self.paths.config_dir)
        stack.push_async_callback(asyncio.to_thread, self.store.close)
        self.supervisor = LifecycleSupervisor(
            LifecycleSettings(
                work_dir=self.paths.work_dir,
                log_dir=self.paths.logs_dir,
                error_threshold=self.settings.error_threshold,
                error_window=self.settings.error_window,
                grace_period=self.settings.grace_period,
                run_as=self.settings.run_as,
                cgroup_root=self.settings.cgroup_root,
            ),
            environment=self.component_environment,
        )
        self.deployments = DeploymentService(
            self.paths,
            store=self.store,
            supervisor=self.supervisor,
            platform=self.platform,
            reconcile=self.reconcile,
            thing_name=self.settings.thing_name,
            artifact_limits=self.settings.artifacts,
            restart=self.request_bootstrap_restart,
            run_stability=self.settings.run_stability,
        )
        secrets = SecretStore.open(self.paths.root / "secrets")
        deferral = ComponentUpdateDeferral()
        validation = ConfigurationValidation(self.configuration_of)
        # The pipeline stages that other parts of the runtime take part in, attached in the order a deployment
        # meets them (each acts at its own step of the pipeline, so the order is for the reader): secret
        # values are sealed before the deployment is persisted or activated, components validate their new
        # configuration, then may defer the update and hear when it succeeded.
        self.deployments.add_hook(SecretsHook(secrets))
        self.deployments.add_hook(validation)
        self.deployments.add_hook(deferral)
        self.server = IpcServer(
            self.paths.ipc_socket,
            authenticate=self.tokens.component_for,
            handshake_timeout=self.settings.ipc_handshake_timeout,
        )
        if self.settings.cloud is not None:
            # Started before any service or component, so that both can publish (spooled until connected).
            self.cloud = self._cloud_link(self.settings.cloud)
            await self.cloud.start()
            stack.push_async_callback(self.cloud.close)
        self.context = RuntimeContext(
            settings=self.settings,
            paths=self.paths,
            store=self.store,
            supervisor=self.supervisor,
            deployments=self.deployments,
            tokens=self.tokens,
            authorizer=Authorizer(self.configuration_of),
            platform=self.platform,
            deferral=deferral,
            validation=validation,
            secrets=SecretVault(secrets, lambda: self.configuration_of(SECRET_MANAGER)),
            cloud=self.cloud,
        )
        self.services = [factory(self.context) for factory in SERVICE_FACTORIES]
        for service in self.services:
            service.register(self.server)
        for service in self.services:
            await service.start()
            stack.push_async_callback(service.close)
        if self.cloud is not None and self.cloud.settings.fleet.enabled:
            # Before recovery: the agent is where the deployment service gets fleet components from.
            self.fleet = self._fleet_agent(self.cloud)
        # Recovery runs before anything can reach the socket, so no request races it; it reads a few small
        # files and stays on the loop because it fills the deployment queue.
        self.deployments.recover()
        # Before the first reconcile, so that components using streams find the server listening; it closes
        # after they stopped.
        self.streams = StreamComponent(
            self.store, self.paths, self.tokens, cloud=self.cloud, thing=self.settings.thing_name
        )
        await self.streams.start()
        stack.push_async_callback(self.streams.close)
        self.log_upload = LogComponent(
            self.store, self.paths, cloud=self.cloud, thing=self.settings.thing_name
        )
        await self.log_upload.start()
        stack.push_async_callback(self.log_upload.close)
        self.client_devices = ClientDevicesComponent(
            self.store, self.paths, cloud=self.cloud, thing=self.settings.thing_name, bus=self.context.bus
        )
        await self.client_devices.start()
        stack.push_async_callback(self.client_devices.close)
        await self.server.start()
        stack.push_async_callback(self.server.close)
        # Components start with the first reconcile; they stop before the IPC server closes.
        stack.push_async_callback(self.supervisor.shutdown)
        self.reconcile()
        self.store.subscribe((), self._on_change)
        self.deployments.start()
        stack.push_async_callback(self.deployments.close)
        if self.fleet is not None:
            # After recovery, so a deployment interrupted by a crash is finished before the agent reports it.
            await self.fleet.start()
            stack.push_async_callback(self.fleet.close)
        # On the loop's thread, as after a change: when the tree changed it imports PyYAML, which in a worker
        # thread would land in that thread's malloc arena and keep more memory resident.
        self.store.write_effective(self.paths.effective_config)
        self.paths.pid_file.write_text(f"{os.getpid()}\n")
        write_greengrass_cli(self.paths)
        # Written last: the CLI token is what tools and tests wait for before they talk to the runtime.
        self._write_cli_token()
        logger.info(
            "Runtime started at %s (thing %s, platform %s)",
            self.paths.root,
            self.settings.thing_name,
            ", ".join(f"{key}={value}" for key, value in sorted(self.platform.items())),
        )

    def _cloud_link(self, cloud: CloudLinkSettings) -> CloudLink:
        """The connection to the cloud, announcing the device's presence when the fleet agent is on."""
        # Imported only here: a runtime without a cloud section never loads the MQTT client.
        from edgewise.runtime.cloudlink import CloudLink

        presence = None
        if cloud.fleet.enabled:
            from edgewise.runtime.fleet import presence_messages

            presence = presence_messages(self.settings.thing_name)
        return CloudLink(
            cloud,
            client_id=cloud.client_id or self.settings.thing_name,
            spool_dir=self.paths.root / "spool",
            connection_messages=presence,
        )

    def _fleet_agent(self, cloud: CloudLink) -> FleetAgent:
        """Fleet deployments, fleet status and presence."""
        from edgewise.runtime.fleet import FleetAgent

        return FleetAgent(
            cloud,
            thing=self.settings.thing_name,
            settings=cloud.settings,
            paths=self.paths,
            store=self.store,
            supervisor=self.supervisor,
            deployments=self.deployments,
            platform=self.platform,
            artifact_limits=self.settings.artifacts,
        )

    def _write_cli_token(self) -> None:
        """Write the CLI's token where only the runtime's user can read it (like greengrass-cli)."""
        info = {
            "cli_auth_token": self.tokens.issue(CLI_IDENTITY),
            "domain_socket_path": str(self.paths.ipc_socket),
        }
        # Not fsynced: the token is worthless once this process is gone, so only atomicity matters.
        payload = json.dumps(info).encode("utf-8")
        write_atomically(self.paths.cli_token_file, payload, mode=0o600, durable=False)

    async def stop(self) -> None:
        """Shut down in stages: no new deployments, components (dependents first), IPC, store."""
        logger.info("Runtime stopping")
        await self._started.aclose()
        logger.info("Runtime stopped")

    async def run(self) -> None:
        """Start, run until SIGTERM or SIGINT, then stop."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        with reaping_through_pidfds(loop):
            await self.start()
            try:
                await self._stop.wait()
            finally:
                await self.stop()
            if self.bootstrap_action is BootstrapAction.REBOOT:
                await self._reboot()

    async def _reboot(self) -> None:
        """Run the reboot command (``RuntimeSettings.reboot_command``); the deployment goes on after the boot."""
        command = self.settings.reboot_command
        logger.warning("Rebooting the device for a Bootstrap step: %s", " ".join(command))
        try:
            process = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.DEVNULL)
            async with asyncio.timeout(_REBOOT_COMMAND_TIMEOUT):
                code = await process.wait()
        except (OSError, TimeoutError) as exc:
            logger.error("The reboot command %s failed: %r", command[0], exc)
            return
        if code != 0:
            logger.error("The reboot command %s exited with code %d", command[0], code)


def restart_in_place() -> None:
    """Replace this process with a fresh runtime started the same way (a Bootstrap step exited with 100).

    Call only after the kernel has stopped and its event loop has closed: nothing of the old runtime may run.
    The process id stays the same, so a service manager or a parent waiting on it sees no exit.
    """
    logging.shutdown()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
