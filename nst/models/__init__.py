"""The model file, shipped models, export, and the ONNX twin that OpenVINO or ONNX Runtime runs.
No Lightning, no Hydra."""
