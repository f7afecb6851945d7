"""A component that publishes QoS 1 messages once, whether or not the cloud is reachable.

Usage: mqttproxy_spooler.py DONE TOPIC COUNT

Publishes COUNT messages ``0``..``COUNT-1`` to TOPIC, then writes DONE; if DONE exists (the runtime
restarted), it publishes nothing.
"""

import os
import sys

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import QOS

done_path, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
if not os.path.exists(done_path):
    client = GreengrassCoreIPCClientV2()
    for index in range(count):
        client.publish_to_iot_core(topic_name=topic, qos=QOS.AT_LEAST_ONCE, payload=str(index))
    client.close()
    with open(done_path, "w") as done:
        done.write(str(count))
