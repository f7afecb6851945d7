"""Demo component: works for a while, then crashes, so the runtime restarts it."""

import argparse
import random
import signal
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--mean", type=float, default=12.0)
args = parser.parse_args()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

lifetime = random.expovariate(1.0 / args.mean) + 6.0
print(f"working; will crash in {lifetime:.1f} s")
time.sleep(lifetime)
print("simulated failure!", file=sys.stderr)
sys.exit(1)
