"""A hub sensor for the ML loop test: simulated readings to IoT Core as history, then live to the inference model.

Usage: ml_loop_sensor.py THING SEED FAULT_RATE HISTORY LIVE

Readings come from ``edgewise.components.simulation`` (seeded, with labelled faults), numbered from 0:

1. the first HISTORY readings go to IoT Core on ``dt/THING/reading`` (QoS 1), as fast as they are acknowledged,
   their payload timestamps one second apart and ending now: the history a dataset is built from;
2. then, until a result arrives on ``ml/THING/anomaly``, the first reading again on the local topic
   ``hub/THING/reading/probe`` every 100 ms: the model is not deployed yet, and nothing is lost waiting for it;
3. then the next LIVE readings on ``hub/THING/reading/<sequence>``, the sequence number in the topic so that a
   result (which names its input's topic) says which reading it is about; then it idles.
"""

import itertools
import json
import sys
import threading
import time

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import QOS, JsonMessage, PublishMessage

from edgewise.components.simulation import SimulationSettings, readings

thing, seed, fault_rate, history, live = sys.argv[1:6]
history_count, live_count = int(history), int(live)
settings = SimulationSettings(seed=int(seed), fault_rate=float(fault_rate))
series = readings(settings, start=time.time() - history_count * settings.interval_s)
answered = threading.Event()

client = GreengrassCoreIPCClientV2()
client.subscribe_to_topic(topic=f"ml/{thing}/anomaly", on_stream_event=lambda event: answered.set())

first = None
for reading in itertools.islice(series, history_count):
    payload = reading.payload(thing)
    first = first or payload
    client.publish_to_iot_core(
        topic_name=f"dt/{thing}/reading", qos=QOS.AT_LEAST_ONCE, payload=json.dumps(payload).encode()
    )


def publish(topic, payload):
    client.publish_to_topic(
        topic=topic, publish_message=PublishMessage(json_message=JsonMessage(message=payload))
    )


while not answered.wait(0.1):
    publish(f"hub/{thing}/reading/probe", first)
for reading in itertools.islice(series, live_count):
    publish(f"hub/{thing}/reading/{reading.sequence}", reading.payload(thing))
    time.sleep(0.005)
threading.Event().wait()
