"""nst: fast neural style transfer (Johnson et al. 2016) with the Gatys et al. (2015) optimizer beside it.

The Python API for notebooks and scripts::

    import nst
    model = nst.load_model("starry_night.safetensors")   # an exported model or a Lightning .ckpt
    out = model(pil_image)                               # PIL in, PIL out; tensors work too
    out = model(tensor)                                  # (N, 3, H, W) in [0, 1]

(``nst.inference.stylize`` is the inference module; its options are in ``nst.api.stylize``.)

Heavier pieces (``nst.gatys.module.optimize``, ``nst.models.export``,
``nst.perceptual.losses.PerceptualLoss``) are imported from their modules.
"""

from nst.version import __version__

__all__ = ["NSTError", "Stylizer", "load_model", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import nst` (and `nst --help`) does not pay for importing torch.
    if name in ("load_model", "Stylizer"):
        from nst import api

        return getattr(api, name)
    if name == "NSTError":
        from nst.errors import NSTError

        return NSTError
    raise AttributeError(f"module 'nst' has no attribute {name!r}")
