"""The cloud link's settings: one MQTT 5 connection over mutual TLS, its spool, its back-off and the device agent.

The runtime builds them from the configuration file's ``cloud`` section (``edgewise.runtime.config_file``);
tests and benchmarks build them directly. The defaults are the file's, taken from its sections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgewise.protocol.device_config import CloudSection, FleetSection, ReconnectSection, SpoolSection

if TYPE_CHECKING:
    import ssl

#: ALPN protocol that lets AWS IoT Core accept MQTT with client certificates on port 443.
_ALPN_MQTT_443 = "x-amzn-mqtt-ca"


@dataclass(frozen=True)
class SpoolSettings:
    """Where publishes wait while offline or unacknowledged."""

    #: Oldest messages are dropped beyond this (topic + payload + properties).
    max_bytes: int = SpoolSection.max_bytes
    keep_qos0_when_offline: bool = SpoolSection.keep_qos0_when_offline


@dataclass(frozen=True)
class ReconnectSettings:
    """Exponential back-off with jitter between connection attempts, in seconds."""

    min_delay: float = ReconnectSection.min_delay
    max_delay: float = ReconnectSection.max_delay


@dataclass(frozen=True)
class FleetSettings:
    """The device agent (``edgewise.runtime.fleet``): fleet deployments, fleet status and presence."""

    #: Off for a broker that is not an Edgewise cloud (AWS IoT Core, a plain broker).
    enabled: bool = FleetSection.enabled
    #: Seconds between the periodic COMPLETE fleet status messages.
    status_interval: int = FleetSection.status_interval
    #: Seconds a jobs question or final report waits for its answer before it is asked or checked again.
    confirm_interval: int = FleetSection.confirm_interval


@dataclass(frozen=True)
class CloudLinkSettings:
    """One MQTT 5 connection over mutual TLS."""

    endpoint: str
    certificate: Path
    private_key: Path
    root_ca: Path
    port: int = CloudSection.port
    #: The cloud's HTTPS listener on ``endpoint`` (stream manager S3 export uploads).
    https_port: int = CloudSection.https_port
    client_id: str | None = None  #: None: the thing name
    keep_alive: int = CloudSection.keep_alive
    spool: SpoolSettings = field(default_factory=SpoolSettings)
    reconnect: ReconnectSettings = field(default_factory=ReconnectSettings)
    fleet: FleetSettings = field(default_factory=FleetSettings)

    def tls_context(self) -> ssl.SSLContext:
        """A client context that verifies the server against ``root_ca`` and presents the certificate.

        Blocks (reads the files). Raises ``ssl.SSLError`` or ``OSError`` for files that cannot be used.
        """
        # Imported here: the ssl module (with OpenSSL) costs the runtime memory only once it connects.
        import ssl

        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.root_ca))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.certificate), str(self.private_key))
        if self.port == 443:
            context.set_alpn_protocols([_ALPN_MQTT_443])
        return context
