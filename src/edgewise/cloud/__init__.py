"""The cloud side: registry, identity, MQTT gateway, fleet deployments, shadows, jobs, telemetry, console."""
