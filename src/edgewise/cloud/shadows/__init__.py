"""Device shadows in the cloud: AWS IoT's Device Shadow service over MQTT (``$aws/things/<thing>/shadow/...``),
the REST API (AWS IoT's data-plane shapes) and the CLI, with the document semantics of
:mod:`edgewise.protocol.shadow.document`."""
