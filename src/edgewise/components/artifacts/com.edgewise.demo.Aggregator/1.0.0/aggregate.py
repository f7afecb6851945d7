"""Demo component: prints the moving average of the simulator's readings."""

import argparse
import json
import signal
import statistics
import sys
import time
from collections import deque

parser = argparse.ArgumentParser()
parser.add_argument("--readings", required=True)
parser.add_argument("--window", type=int, default=5)
args = parser.parse_args()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

window: deque[float] = deque(maxlen=args.window)
position = 0
while True:
    try:
        with open(args.readings, encoding="utf-8") as readings:
            readings.seek(position)
            for line in readings:
                if line.endswith("\n"):
                    window.append(json.loads(line)["temperature"])
            position = readings.tell()
    except FileNotFoundError:
        pass
    if window:
        print(f"average of last {len(window)} readings: {statistics.fmean(window):.2f} C")
    time.sleep(3)
