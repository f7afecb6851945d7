"""The ``edgewise`` command."""

from __future__ import annotations

import typer

from edgewise import __version__
from edgewise.cli import (
    broker,
    cloud,
    component,
    console,
    core_device,
    dataset,
    demo,
    deployment,
    device,
    identity,
    job,
    logs,
    model,
    provisioning,
    registry,
    rule,
    runtime,
    shadow,
    telemetry,
)

app = typer.Typer(
    help="Edgewise: a self-hosted platform for intelligent workloads at the edge.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(runtime.app, name="runtime")
app.add_typer(cloud.app, name="cloud")
app.add_typer(broker.app, name="broker")
app.add_typer(registry.thing_app, name="thing")
app.add_typer(registry.group_app, name="group")
app.add_typer(identity.cert_app, name="cert")
app.add_typer(identity.policy_app, name="policy")
app.add_typer(device.app, name="device")
app.add_typer(component.app, name="component")
app.add_typer(console.app, name="console")
app.add_typer(core_device.app, name="core-device")
app.add_typer(deployment.app, name="deployment")
app.add_typer(job.app, name="job")
app.add_typer(provisioning.app, name="provisioning-template")
app.add_typer(telemetry.app, name="telemetry")
app.add_typer(rule.app, name="rule")
app.add_typer(shadow.app, name="shadow")
app.add_typer(dataset.app, name="dataset")
app.add_typer(model.app, name="model")
identity.cert_app.command("create-claim")(provisioning.cert_create_claim)
app.command("demo")(demo.demo)
app.command("logs")(logs.logs)


@app.command()
def version() -> None:
    """Print the Edgewise version."""
    print(__version__)


def main() -> None:
    app()
