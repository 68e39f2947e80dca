"""Training with Lightning: the one LightningModule for image-to-image networks, its callbacks and
the photo data module. This package, ``nst.gatys`` and the CLI's train/compare modes are where
Lightning is imported; inference (``nst.inference``, ``nst.models``, the Python API) never does."""
