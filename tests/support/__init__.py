"""Helpers that tests of every kind share, so that no unit test imports from ``tests/integration``.

- ``pki``: a throwaway certificate authority issuing server and client certificates.
- ``ports``: free loopback TCP ports.
- ``mosquitto``: a real Mosquitto 2 with mutual TLS, and an MQTT 5 client for it.
- ``runtime_process``: a real runtime process, and recipes and script components to deploy to it.
- ``fleet_cloud``: a test-side stand-in for the fleet cloud (jobs, shadows, artifact downloads) over Mosquitto.
"""
