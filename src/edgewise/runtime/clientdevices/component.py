"""The client-device built-ins on the core device: follows ``aws.greengrass.clientdevices.Auth``, the local broker
(``mqtt.Moquette`` or ``mqtt.EMQX``), ``mqtt.Bridge`` and ``IPDetector`` in the services tree and runs what they
describe (docs/client-devices.md, "On the core device").

Like the other built-ins (:mod:`edgewise.runtime.log_component`), their lifecycles never run: while the services
tree holds them, :class:`ClientDevicesComponent` runs

- with Auth and a broker name: the trust list (from the cloud, cached), the local CA and the rotating server
  certificate, the managed Mosquitto (:mod:`.broker`) and the TLS gate in front of it (:mod:`.gate`);
- with the Bridge: the :class:`~.bridge.Bridge`, logged in to the local broker when one runs;
- with the IPDetector: the :class:`~.ip_detector.IpDetector`, whose addresses go into the server certificate.

A part restarts when its configuration changes (a change of Auth's policies is applied in place, without
dropping the devices it still allows). A configuration that cannot be used is logged naming its key, and what
ran before keeps running. Nothing of the client-device code (paho, cryptography, ssl) is imported until one of
the components is deployed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final

from edgewise.errors import EdgewiseError
from edgewise.runtime.builtin_follower import BuiltinFollower
from edgewise.runtime.clientdevices.names import ALL, AUTH, BRIDGE, EMQX, IP_DETECTOR, MOQUETTE

if TYPE_CHECKING:
    from edgewise.protocol.client_devices import ConnectivityEntry
    from edgewise.runtime.clientdevices.auth_settings import AuthSettings
    from edgewise.runtime.clientdevices.authority import Authority
    from edgewise.runtime.clientdevices.bridge import Bridge
    from edgewise.runtime.clientdevices.broker import LocalBroker
    from edgewise.runtime.clientdevices.broker_settings import BrokerSettings
    from edgewise.runtime.clientdevices.gate import Gate
    from edgewise.runtime.clientdevices.ip_detector import IpDetector
    from edgewise.runtime.cloudlink import CloudLink
    from edgewise.runtime.config import ConfigStore
    from edgewise.runtime.paths import RootPaths
    from edgewise.runtime.pubsub import PubSubBus

logger = logging.getLogger(__name__)

#: How often the server certificate and the trust list's age are looked at.
MAINTENANCE_INTERVAL: Final = 60.0
CA_ANSWER_TIMEOUT: Final = 30.0
_RETRY_CAP: Final = 300.0


class _Core:
    """Auth, the broker and the gate while they run."""

    def __init__(self, broker_name: str, broker_settings: BrokerSettings, authority: Authority) -> None:
        self.broker_name = broker_name
        self.broker_settings = broker_settings
        self.authority = authority
        self.broker: LocalBroker | None = None
        self.gate: Gate | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.remove_listener: Callable[[], None] | None = None
        self.syncing = asyncio.Lock()

    def spawn(self, job: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``job`` until it ends or the core stops."""
        task = asyncio.create_task(job, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


class ClientDevicesComponent:
    """Follows the five client-device names in the services tree. Must be used from the event loop thread."""

    def __init__(
        self,
        store: ConfigStore,
        paths: RootPaths,
        *,
        cloud: CloudLink | None = None,
        thing: str = "",
        bus: PubSubBus,
    ) -> None:
        self._store = store
        self._paths = paths
        self._cloud = cloud
        self._thing = thing
        self._bus = bus
        self._seen: dict[str, Any] = {}
        self._auth: AuthSettings | None = None
        self._broker: BrokerSettings | None = None
        self._bridge_settings: Any = None
        self._ip_settings: Any = None
        self._core: _Core | None = None
        self._bridge: Bridge | None = None
        self._bridge_local: Any = None
        self._ip_detector: IpDetector | None = None
        self._connectivity: tuple[str, ...] = ()
        self._follower = BuiltinFollower(store, ALL, self._apply_tree, what="The client-device components")
        self._core_failures = 0

    @property
    def gate(self) -> Gate | None:
        """The gate while it runs."""
        return None if self._core is None else self._core.gate

    @property
    def broker(self) -> LocalBroker | None:
        """The managed Mosquitto while it runs."""
        return None if self._core is None else self._core.broker

    async def start(self) -> None:
        """Serve what the services tree holds now, then follow its changes."""
        await self._follower.start()

    async def close(self) -> None:
        """Stop following the services tree and stop every part."""
        await self._follower.close()
        await self._stop_bridge()
        await self._stop_ip_detector()
        await self._stop_core()

    def _configuration(self, name: str, parse: Callable[[Any], Any], current: Any) -> Any:
        """The settings of ``name`` if deployed (``current`` when its new configuration is bad), else None."""
        if not self._store.contains(("services", name)):
            self._seen.pop(name, None)
            return None
        configuration = self._store.get(("services", name, "configuration"))
        if name in self._seen and configuration == self._seen[name]:
            return current
        self._seen[name] = configuration
        try:
            return parse(configuration)
        except EdgewiseError as error:
            kept = "it keeps running with its previous settings" if current is not None else "it does not run"
            logger.error("%s; %s", error, kept)
            return current

    async def _apply_tree(self) -> None:
        deployed = [name for name in ALL if self._store.contains(("services", name))]
        if not deployed and self._core is None and self._bridge is None and self._ip_detector is None:
            self._seen.clear()
            return
        from edgewise.runtime.clientdevices.auth_settings import parse_auth_settings
        from edgewise.runtime.clientdevices.bridge_settings import parse_bridge_settings
        from edgewise.runtime.clientdevices.broker_settings import parse_broker_settings
        from edgewise.runtime.clientdevices.ip_detector import parse_ip_detector_settings

        self._auth = self._configuration(AUTH, parse_auth_settings, self._auth)
        broker_name = next((name for name in (MOQUETTE, EMQX) if name in deployed), None)
        for name in (MOQUETTE, EMQX):
            if name != broker_name:
                self._seen.pop(name, None)
        if broker_name is None:
            self._broker = None
        else:
            current = (
                self._broker if self._broker is not None and self._broker.component == broker_name else None
            )
            self._broker = self._configuration(
                broker_name, lambda body: parse_broker_settings(body, broker_name), current
            )
        await self._apply_core()
        self._ip_settings = self._configuration(IP_DETECTOR, parse_ip_detector_settings, self._ip_settings)
        await self._apply_ip_detector()
        self._bridge_settings = self._configuration(BRIDGE, parse_bridge_settings, self._bridge_settings)
        await self._apply_bridge()

    # -- Auth, broker and gate --------------------------------------------------------------------------

    async def _apply_core(self) -> None:
        auth, broker = self._auth, self._broker
        core = self._core
        if auth is None or broker is None:
            if (auth is None) != (broker is None):
                missing = "a broker (mqtt.Moquette or mqtt.EMQX)" if broker is None else AUTH
                logger.warning("Client devices cannot connect: %s is not deployed", missing)
            await self._stop_core()
            return
        alive = core is not None and core.broker is not None and not core.broker.exited.is_set()
        if core is not None and alive and core.broker_settings == broker:
            if core.authority.settings != auth:
                core.authority.settings = auth
                await self._sync(core)
                logger.info("%s applied its new device groups and policies", AUTH)
            return
        await self._stop_core()
        await self._start_core(auth, broker)

    async def _start_core(self, auth: AuthSettings, settings: BrokerSettings) -> None:
        from edgewise.runtime.clientdevices.authority import Authority
        from edgewise.runtime.clientdevices.broker import LocalBroker, LocalBrokerError
        from edgewise.runtime.clientdevices.certificates import CoreCertificates
        from edgewise.runtime.clientdevices.gate import Gate
        from edgewise.runtime.clientdevices.trust import CACHE_FILE, TrustStore

        work = self._paths.component_work(AUTH)
        certificates = CoreCertificates(work / "certificates")
        trust = TrustStore(work / CACHE_FILE)
        await asyncio.to_thread(certificates.open)
        await asyncio.to_thread(trust.load)
        core = _Core(settings.component, settings, Authority(auth, trust, certificates))
        self._core = core
        await self._rotate(core)
        broker = LocalBroker(
            self._paths.component_work(settings.component) / "mosquitto",
            max_packet_size=settings.max_packet_size,
            # Marks Mosquitto as this runtime's child, for the next runtime to end it if this one is killed.
            orphan_environment={"AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH": str(self._paths.ipc_socket)},
        )
        try:
            await broker.start()
        except LocalBrokerError as error:
            logger.error("%s cannot run: %s", settings.component, error)
            await self._stop_core()
            return
        core.broker = broker
        if settings.ignored:
            logger.warning(
                "%s ignores keys that mean nothing to its Mosquitto: %s",
                settings.component,
                ", ".join(settings.ignored),
            )
        gate = Gate(
            core.authority,
            host=settings.host,
            port=settings.port,
            broker_address=lambda: (broker.access.host, broker.access.port),
            broker_login=lambda thing: self._login(core, thing),
        )
        try:
            await self._sync(core)
            await gate.start()
        except (OSError, LocalBrokerError) as error:
            logger.error(
                "%s cannot listen on %s:%d: %s", settings.component, settings.host, settings.port, error
            )
            await self._stop_core()
            return
        core.gate = gate
        core.remove_listener = trust.add_listener(lambda: self._sync_logged(core))
        core.spawn(self._maintain(core), "client-devices-maintenance")
        if self._cloud is None:
            logger.error(
                "%s has no cloud connection: client devices are trusted from the cached list only, until it "
                "expires",
                AUTH,
            )
        else:
            from edgewise.runtime.clientdevices.trust import TrustListFetcher

            fetcher = TrustListFetcher(self._cloud, self._thing, trust)
            core.spawn(fetcher.run(), "client-devices-trust")
            core.spawn(self._send_ca(core, self._cloud), "client-devices-ca")
        logger.info(
            "%s and %s run: client devices connect on port %d", AUTH, settings.component, settings.port
        )

    async def _stop_core(self) -> None:
        core, self._core = self._core, None
        if core is None:
            return
        # Shielded: a cancelled apply (the runtime stopping) must still end Mosquitto.
        stopping = asyncio.ensure_future(self._close_core(core))
        try:
            await asyncio.shield(stopping)
        except asyncio.CancelledError:
            await stopping
            raise

    async def _close_core(self, core: _Core) -> None:
        if core.remove_listener is not None:
            core.remove_listener()
        tasks = list(core.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if core.gate is not None:
            await core.gate.close()
        if core.broker is not None:
            await core.broker.close()
        logger.info("%s stopped", core.broker_name)

    async def _sync(self, core: _Core) -> None:
        """Apply the trust list and the policies: drop connections no longer allowed, then give the broker the
        devices' logins and topics."""
        async with core.syncing:
            if core.gate is not None:
                core.gate.recheck()
            if core.broker is not None:
                await core.broker.set_devices(core.authority.broker_acls())

    async def _sync_logged(self, core: _Core) -> None:
        """:meth:`_sync` for a new trust list: a failure is logged, the fetcher goes on."""
        try:
            await self._sync(core)
        except Exception:
            logger.exception("The local broker could not take the new client-device trust list")

    async def _login(self, core: _Core, thing: str) -> tuple[str, str] | None:
        """``thing``'s broker login, once the sync under way (a new trust list, new policies) is done."""
        async with core.syncing:
            return None if core.broker is None else core.broker.login_of(thing)

    async def _rotate(self, core: _Core) -> None:
        from edgewise.runtime.clientdevices.certificates import host_names

        names = [*await asyncio.to_thread(host_names), *self._connectivity]
        certificates = core.authority.certificates
        if certificates.needs_server_certificate(names):
            await asyncio.to_thread(
                certificates.issue_server_certificate,
                names,
                core.authority.settings.server_certificate_validity,
            )

    async def _maintain(self, core: _Core) -> None:
        assert core.broker is not None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(MAINTENANCE_INTERVAL):
                    await core.broker.exited.wait()
            if core.broker.exited.is_set():
                self._core_failures += 1
                delay = min(0.5 * 2.0 ** (self._core_failures - 1), _RETRY_CAP)
                logger.warning("Restarting the local broker in %.1f s", delay)
                await asyncio.sleep(delay)
                self._follower.reapply()
                return
            self._core_failures = 0  # it ran a whole interval: the next crash starts the back-off again
            try:
                await self._rotate(core)
                await self._sync(core)  # a trust list may have grown too old
            except Exception:
                logger.exception(
                    "The client-device maintenance failed; it runs again in %.0f s", MAINTENANCE_INTERVAL
                )

    async def _send_ca(self, core: _Core, cloud: CloudLink) -> None:
        from edgewise.runtime.clientdevices.trust import publish_core_ca
        from edgewise.runtime.cloudlink import CloudLinkError

        pem = core.authority.certificates.ca_pem
        failures = 0
        while True:
            try:
                await publish_core_ca(cloud, self._thing, (pem,), timeout=CA_ANSWER_TIMEOUT)
                logger.info("The cloud has this core device's local CA for discovery")
                return
            except (TimeoutError, CloudLinkError, EdgewiseError) as error:
                failures += 1
                delay = min(5.0 * 2**failures, _RETRY_CAP)
                logger.warning(
                    "Cannot send the core's local CA to the cloud (%s); trying again in %.0f s", error, delay
                )
                await asyncio.sleep(delay)

    # -- IPDetector and Bridge ---------------------------------------------------------------------------

    def _connectivity_changed(self, entries: list[ConnectivityEntry]) -> None:
        names = tuple(sorted({entry.host_address for entry in entries}))
        if names != self._connectivity:
            self._connectivity = names
            core = self._core
            if core is not None:
                core.spawn(self._rotate(core), "client-devices-rotate")

    async def _apply_ip_detector(self) -> None:
        settings = self._ip_settings
        running = self._ip_detector
        if running is not None and settings is not None and running.settings == settings:
            return
        await self._stop_ip_detector()
        if settings is None:
            return
        from edgewise.runtime.clientdevices.ip_detector import IpDetector

        detector = IpDetector(
            settings, cloud=self._cloud, thing=self._thing, on_change=self._connectivity_changed
        )
        await detector.start()
        self._ip_detector = detector

    async def _stop_ip_detector(self) -> None:
        detector, self._ip_detector = self._ip_detector, None
        if detector is not None:
            await detector.close()

    async def _apply_bridge(self) -> None:
        settings = self._bridge_settings
        broker = self.broker
        local = broker.access if broker is not None and broker.running else None
        running = self._bridge
        if (
            running is not None
            and settings is not None
            and running.settings == settings
            and local == self._bridge_local
        ):
            return
        await self._stop_bridge()
        if settings is None:
            return
        from edgewise.runtime.clientdevices.bridge import Bridge

        bridge = Bridge(settings, local=local, bus=self._bus, cloud=self._cloud)
        try:
            await bridge.start()
        except EdgewiseError as error:
            logger.error("%s cannot start: %s", BRIDGE, error)
            await bridge.close()
            return
        self._bridge, self._bridge_local = bridge, local

    async def _stop_bridge(self) -> None:
        bridge, self._bridge = self._bridge, None
        self._bridge_local = None
        if bridge is not None:
            await bridge.close()
