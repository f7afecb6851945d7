"""AutoML training: a dataset and a request in, an ONNX model that fits the edge budget out.

``train`` searches (FLAML for classification, regression and lag-window forecasting; scaled anomaly
detectors for anomaly), ranks what it tried on the latest rows, and exports candidates in rank order until
one passes the fidelity gate and the device's size and latency budget. ``python -m
edgewise.ml.training.job`` runs it as a separate process that streams progress as JSON lines.
"""

from edgewise.ml.training.budget import Contender, EdgeChoice, choose_for_edge
from edgewise.ml.training.leaderboard import Candidate, ProgressCallback, ProgressEvent
from edgewise.ml.training.run import TrainingResult, train
from edgewise.ml.training.splits import TimeSplit, time_split
from edgewise.ml.training.tasks import EdgeBudget, Task, TrainingRequest

__all__ = [
    "Candidate",
    "Contender",
    "EdgeBudget",
    "EdgeChoice",
    "ProgressCallback",
    "ProgressEvent",
    "Task",
    "TimeSplit",
    "TrainingRequest",
    "TrainingResult",
    "choose_for_edge",
    "time_split",
    "train",
]
