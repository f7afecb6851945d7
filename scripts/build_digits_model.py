"""Build the artifacts of ``edgewise.ml.ImageClassification.ModelStore`` 1.0.0: a digits classifier and its labels.

Trains on scikit-learn's 8 x 8 digits with Edgewise's own training (``edgewise.ml.training.train``, task
classification, a few seconds, an edge budget that keeps the model small; the export passes the fidelity
gate), tags the ONNX model with how an image becomes its input (``edgewise.image`` metadata: 8 x 8, ink
counts 0..16, dark ink on light paper), and writes ``digits-8x8.onnx`` and ``labels.txt`` beside the
shipped components, then the SHA-256 digests into the model store's recipe.

The test rows are held out by ``TEST_SPLIT``, the split ``tests/components/image_classification`` checks the
committed model against. Run from the repository root: ``.venv/bin/python scripts/build_digits_model.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STORE = "edgewise.ml.ImageClassification.ModelStore"
MODEL_FILE = "digits-8x8.onnx"
LABELS_FILE = "labels.txt"
#: train_test_split arguments of the held-out digits (the test reproduces them).
TEST_SPLIT = {"test_size": 0.25, "random_state": 0}
TIME_BUDGET_S = 4.0
MAX_SIZE_BYTES = 16 * 1024


def main() -> int:
    import numpy as np
    import onnx
    import pyarrow as pa
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from edgewise.components import ARTIFACTS_DIR, RECIPES_DIR
    from edgewise.components.image_classification.classifier import IMAGE_METADATA_KEY, ImageInput
    from edgewise.ml.export.latency import onnx_session
    from edgewise.ml.training import EdgeBudget, Task, TrainingRequest, train

    digits = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        digits.data, digits.target, stratify=digits.target, **TEST_SPLIT
    )
    columns: dict[str, object] = {f"pixel_{index}": X_train[:, index] for index in range(64)}
    columns["digit"] = y_train
    request = TrainingRequest(
        task=Task.CLASSIFICATION,
        label="digit",
        time_budget_s=TIME_BUDGET_S,
        budget=EdgeBudget(max_size_bytes=MAX_SIZE_BYTES),
        seed=0,
    )
    result = train(pa.table(columns), request, progress=lambda event: print(json.dumps(event.to_json())))
    if result.classes != list(range(10)):
        raise SystemExit(f"expected the classes 0..9, got {result.classes}")
    model = onnx.load_from_string(result.onnx)
    entry = model.metadata_props.add()
    entry.key = IMAGE_METADATA_KEY
    entry.value = json.dumps(ImageInput(width=8, height=8, scale=16.0, invert=True).to_json())
    onnx_bytes = model.SerializeToString()
    session = onnx_session(onnx_bytes)
    (labels,) = session.run(["label"], {"input": X_test.astype(np.float32)})
    accuracy = float((np.asarray(labels).ravel() == y_test).mean())

    target = ARTIFACTS_DIR / STORE / "1.0.0"
    target.mkdir(parents=True, exist_ok=True)
    (target / MODEL_FILE).write_bytes(onnx_bytes)
    (target / LABELS_FILE).write_text("".join(f"{digit}\n" for digit in range(10)))
    _write_digests(RECIPES_DIR / f"{STORE}-1.0.0.yaml", target)
    print(
        f"{result.learner}: {len(onnx_bytes)} bytes, fidelity max delta {result.fidelity.max_abs_delta:.3g}, "
        f"accuracy {accuracy:.4f} on {len(y_test)} held-out digits -> {target}"
    )
    return 0


def _write_digests(recipe: Path, artifacts: Path) -> None:
    """Put each artifact's SHA-256 (base64, as recipes write it) on the ``Digest:`` line after its ``Uri:``."""
    text = recipe.read_text()
    for name in (MODEL_FILE, LABELS_FILE):
        digest = base64.b64encode(hashlib.sha256((artifacts / name).read_bytes()).digest()).decode()
        pattern = re.compile(rf"(Uri: edgewise:models/{re.escape(name)}\n\s+Digest: )\S+")
        text, count = pattern.subn(rf"\g<1>{digest}", text)
        if count != 1:
            raise SystemExit(f"{recipe.name}: no 'Digest:' line under the Uri of {name}")
    recipe.write_text(text)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main())
