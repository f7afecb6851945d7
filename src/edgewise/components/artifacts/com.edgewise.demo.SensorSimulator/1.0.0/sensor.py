"""Demo component: a simulated temperature sensor writing JSON lines."""

import argparse
import json
import math
import random
import signal
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--interval", type=float, default=2.0)
parser.add_argument("--sensor", default="sensor-1")
parser.add_argument("--out", required=True)
args = parser.parse_args()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

start = time.time()
with open(args.out, "a", encoding="utf-8") as out:
    while True:
        elapsed = time.time() - start
        reading = {
            "sensor": args.sensor,
            "timestamp": round(time.time(), 3),
            "temperature": round(21.0 + 3.0 * math.sin(elapsed / 30.0) + random.gauss(0, 0.2), 2),
        }
        out.write(json.dumps(reading) + "\n")
        out.flush()
        print(f"{reading['sensor']}: {reading['temperature']} C")
        time.sleep(args.interval)
