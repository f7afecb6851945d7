"""A hub sensor for the ML loop test: simulated readings to IoT Core as history, then live to the inference model.

Usage: ml_loop_sensor.py THING SEED FAULT_RATE INTERVAL HISTORY LIVE SHIFTED SHIFT

Readings come from ``edgewise.components.simulation`` (seeded, with labelled faults, one every INTERVAL seconds),
numbered from 0:

1. the first HISTORY readings go to IoT Core on ``dt/THING/reading`` (QoS 1), as fast as they are acknowledged,
   their payload timestamps INTERVAL seconds apart and ending now: the history a dataset is built from;
2. then, until a result arrives on ``ml/THING/anomaly``, the first reading again on the local topic
   ``hub/THING/reading/probe`` every 100 ms: the model is not deployed yet, and nothing is lost waiting for it;
3. then the next LIVE readings on ``hub/THING/reading/<sequence>``, the sequence number in the topic so that a
   result (which names its input's topic) says which reading it is about;
4. then, until a result arrives on ``ml/THING/notebook`` (the notebook's model, deployed later), the first reading
   on ``nb/THING/probe`` every 100 ms;
5. then SHIFTED readings without a fault, their temperature raised by SHIFT degrees, each on
   ``hub/THING/reading/shifted-<sequence>`` and on ``nb/THING/<sequence>``; then it idles.
"""

import itertools
import json
import sys
import threading
import time

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import QOS, JsonMessage, PublishMessage

from edgewise.components.simulation import SimulationSettings, readings

thing, seed, fault_rate, interval, history, live, shifted, shift = sys.argv[1:9]
history_count, live_count, shifted_count = int(history), int(live), int(shifted)
settings = SimulationSettings(seed=int(seed), fault_rate=float(fault_rate), interval_s=float(interval))
series = readings(settings, start=time.time() - history_count * settings.interval_s)
answered = threading.Event()
notebook_answered = threading.Event()

client = GreengrassCoreIPCClientV2()
client.subscribe_to_topic(topic=f"ml/{thing}/anomaly", on_stream_event=lambda event: answered.set())
client.subscribe_to_topic(topic=f"ml/{thing}/notebook", on_stream_event=lambda event: notebook_answered.set())

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

while not notebook_answered.wait(0.1):
    publish(f"nb/{thing}/probe", first)
normal = (reading for reading in series if not reading.anomaly)
for reading in itertools.islice(normal, shifted_count):
    payload = reading.payload(thing)
    payload["temperature"] = round(payload["temperature"] + float(shift), 3)
    publish(f"hub/{thing}/reading/shifted-{reading.sequence}", payload)
    publish(f"nb/{thing}/{reading.sequence}", payload)
    time.sleep(0.005)
threading.Event().wait()
