"""Client devices behind a core device, Greengrass's ``aws.greengrass.clientdevices.*`` built-ins.

``Auth`` decides which client devices may connect and what they may do; the local broker (deployed as
``mqtt.Moquette`` or ``mqtt.EMQX``) is a managed Mosquitto behind a TLS gate that checks each device's certificate
and CONNECT; ``mqtt.Bridge`` relays messages between the local broker, local pub/sub and the cloud; ``IPDetector``
reports the core device's addresses to the cloud. ``component.ClientDevicesComponent`` runs them all.
"""
