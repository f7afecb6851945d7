"""The ``edgewise.ml.ImageClassification`` component: ONNX image classification shaped like Greengrass's DLR
image classification sample.

Run as ``"$EDGEWISE_PYTHON" -m edgewise.components.image_classification --model FILE --labels FILE``; the
model and labels come from its hard dependency ``edgewise.ml.ImageClassification.ModelStore``. Images are read
without an imaging library (:mod:`.images`), classified with ONNX Runtime (:mod:`.classifier`) in rounds
(:mod:`.service`) and the results published to AWS IoT Core.
"""
