"""AWS IoT Device Shadow documents and errors, shared by the runtime's local shadows and the cloud's shadow service.

Import the module you need: ``from edgewise.protocol.shadow import document, errors``.
"""
