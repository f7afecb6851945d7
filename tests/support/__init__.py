"""Helpers that tests of every kind share, so that no unit test imports from ``tests/integration``.

- ``pki``: a throwaway certificate authority issuing server and client certificates, a CRL and CSRs.
- ``ports``: free loopback TCP ports.
- ``clock``: a fake clock (``now``, ``sleep``) that moves only when the test advances it.
- ``mosquitto``: a real Mosquitto 2 with mutual TLS, an MQTT 5 client for it, and a one-shot mTLS connect probe.
- ``cloud_process``: ``edgewise cloud up`` as a real process on free ports.
- ``cloudlink_settings``: cloud link settings for a test device, with the CA and Mosquitto fixtures they need.
- ``runtime_process``: a real runtime process, and recipes and script components to deploy to it.
- ``fleet_cloud``: a test-side stand-in for the fleet cloud (jobs, shadows, artifact downloads) over Mosquitto.
"""
