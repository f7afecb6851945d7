"""``edgewise.ml.Inference``: the built-in component that runs signed ONNX models on local pub/sub messages.

It reads its configuration over IPC (``trustedKeys``, ``models``), verifies and loads each model's package from
the model component's artifacts, turns the messages of each model's input topic into feature rows (one per
message, or per sliding window), and publishes one result per row locally and, when asked, to AWS IoT Core.
A configuration update that names another model version is loaded and smoke-tested off the message path and
then swapped in. Per model, a challenger version can run in shadow, a river drift detector watch the score
stream, and results be captured (sampled, above a score, or where the challenger disagrees) into a stream-manager
stream exported to the cloud. ``python -m edgewise.components.inference`` runs it; ``...inference.verify`` is the check a
model component's Install step runs. docs/ml.md ("Models on the device") describes it for users.

This package's ``__init__`` imports nothing heavy: the verify step needs only the standard library and
``cryptography``.
"""
