"""The training job: ``python -m edgewise.ml.training.job --dataset FILE --request FILE --out DIR``.

Reads a Parquet dataset and a ``TrainingRequest`` JSON file, trains, and writes ``DIR/model.onnx``,
``DIR/model.pkl`` (the native model, pickled) and ``DIR/result.json`` (the ``TrainingResult`` without the
model bytes, plus the request), ``result.json`` last so that its presence means the job finished. Progress goes
to stdout as one JSON object per line: ``{"event":"phase","message":...}``, ``{"event":"candidate",
"candidate":{...}}``, then ``{"event":"done","score":...}`` (exit 0) or ``{"event":"failed","reason":...}``
(exit 1). Libraries that print go to stderr instead: stdout is reserved for those lines. SIGTERM ends the
job at once with a ``failed`` line (exit 143); registering the model is the caller's business.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Final

from edgewise.errors import EdgewiseError
from edgewise.ml.training.leaderboard import ProgressEvent
from edgewise.ml.training.tasks import TrainingRequest

if TYPE_CHECKING:
    import pyarrow as pa

#: The exit status after SIGTERM (128 + the signal number, as a shell reports it).
TERMINATED_EXIT: Final = 128 + signal.SIGTERM


class EventStream:
    """JSON lines on a file descriptor of their own, written whole with one ``os.write`` each."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, event: dict[str, object]) -> None:
        data = (json.dumps(event, separators=(",", ":"), allow_nan=False) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data) :]

    def progress(self, event: ProgressEvent) -> None:
        self.send(event.to_json())


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    events = EventStream(_reserve_stdout())
    _on_sigterm(events)
    try:
        score = run_job(Path(arguments.dataset), Path(arguments.request), Path(arguments.out), events)
    except EdgewiseError as error:
        events.send({"event": "failed", "reason": str(error)})
        return 1
    except Exception as error:  # the job must always end with a failed line the worker can show
        traceback.print_exc()
        events.send({"event": "failed", "reason": f"{type(error).__name__}: {error}"})
        return 1
    events.send({"event": "done", "score": score})
    return 0


def run_job(dataset: Path, request_file: Path, out: Path, events: EventStream) -> float | None:
    """Train on ``dataset`` as ``request_file`` asks and write the files into ``out``; the winner's score."""
    from edgewise.ml.errors import TrainingError
    from edgewise.ml.training.run import train

    try:
        request_data = json.loads(request_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise TrainingError(f"request: cannot read {request_file}: {error}") from error
    request = TrainingRequest.from_json(request_data)
    events.progress(ProgressEvent(kind="phase", message=f"reading {dataset.name}"))
    table = _read_parquet(dataset)
    result = train(table, request, events.progress)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(result.onnx)
    (out / "model.pkl").write_bytes(pickle.dumps(result.native_model))
    document = {**result.to_json(), "request": request.to_json()}
    temporary = out / "result.json.tmp"
    temporary.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    temporary.replace(out / "result.json")
    return result.score if math.isfinite(result.score) else None


def _read_parquet(path: Path) -> pa.Table:
    import pyarrow.parquet as pq

    from edgewise.ml.errors import TrainingError

    try:
        return pq.read_table(path)
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise TrainingError(f"dataset: cannot read {path} as Parquet: {error}") from error


def _reserve_stdout() -> int:
    """A private copy of stdout for the event lines, with fd 1 pointed at stderr for everything else."""
    sys.stdout.flush()
    events_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return events_fd


def _on_sigterm(events: EventStream) -> None:
    def terminate(signum: int, frame: FrameType | None) -> None:
        del frame
        events.send({"event": "failed", "reason": f"terminated by signal {signal.Signals(signum).name}"})
        # Exit without unwinding: a search deep in a native library would otherwise finish its trial first.
        os._exit(TERMINATED_EXIT)

    signal.signal(signal.SIGTERM, terminate)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m edgewise.ml.training.job", description=__doc__)
    parser.add_argument("--dataset", required=True, help="the Parquet dataset file")
    parser.add_argument("--request", required=True, help="the TrainingRequest JSON file")
    parser.add_argument("--out", required=True, help="the directory the model and result are written to")
    return parser


if __name__ == "__main__":
    sys.exit(main())
