"""The model file, shipped models, export and the ONNX Runtime backend. No Lightning, no Hydra."""
