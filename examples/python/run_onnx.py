"""Runs a KemMl model exported with MultiTaskKemTransformer.ExportOnnx(path) in Python's ONNX Runtime.

Usage: python3 examples/python/run_onnx.py model.onnx
Pixels are raw 0..255 RGB planes (N×3×H×W); normalisation happens inside the graph.
"""
import json
import sys

import numpy as np
import onnxruntime as ort

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
network = json.loads(session.get_modelmeta().custom_metadata_map["kemml.network"])   # tasks and options
image = session.get_inputs()[0]                    # "Image": N×3×H×W
_, _, height, width = image.shape
print("tasks:", [(t["Name"], t["Kind"]) for t in network["Tasks"]])

pixels = np.random.default_rng(0).integers(0, 256, size=(2, 3, height, width)).astype(np.float32)
# from a file: np.asarray(PIL.Image.open(p).convert("RGB").resize((width, height)), np.float32).transpose(2, 0, 1)[None]
outputs = session.run(None, {image.name: pixels})
for out, value in zip(session.get_outputs(), outputs):
    print(out.name, value.shape, value.dtype)      # SegmentationScore (2, C, H, W) float32, SegmentationPredictedLabel (2, H, W) int32, ...
