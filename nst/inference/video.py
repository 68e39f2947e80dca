"""Videos through a style network: which instance-norm statistics each frame uses.

A frame normalized by its own statistics (as a photo) pulses in brightness and contrast with its
content; frames that share statistics, as the tiles of one large image do, do not.
:func:`frame_step` is the per-batch function :func:`nst.io.transcode.process_video` runs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from nst.errors import NSTError

VIDEO_STATS = ("frame", "clip", "scene")


def frame_step(model, video_stats: str = "frame", scene_threshold: float = 0.1) -> Callable[[Tensor], Tensor]:
    """The per-batch function ``process_video`` runs for a Stylizer or an Upscaler (anything with
    ``stylize_tensor``), for one clip.

    ``video_stats`` (instance-norm statistics, style networks only): ``frame``, each frame its own
    (as a photo); ``clip``, the first frame's for every frame; ``scene``, a frame's own when it
    starts a scene (its 64 px thumbnail differs from the previous frame's by more than
    ``scene_threshold`` on average, in [0, 1] units), else those of its scene's first frame.
    Shared statistics are what the tiles of one large image already share; frames normalized alike
    do not pulse in brightness and contrast with their content."""
    if video_stats not in VIDEO_STATS:
        raise NSTError(f"video_stats={video_stats!r}: choose one of {', '.join(VIDEO_STATS)}")
    if video_stats == "frame" or not hasattr(model, "capture_stats"):
        return model.stylize_tensor
    from nst.io.image import resize

    state: dict = {"stats": None, "thumb": None}

    def step(x: Tensor) -> Tensor:
        outs, start = [], 0
        for i in range(x.shape[0]):
            thumb = resize(x[i:i + 1], max_side=64)
            prev = state["thumb"]
            cut = prev is not None and float((thumb - prev).abs().mean()) > scene_threshold
            state["thumb"] = thumb
            if state["stats"] is None or (video_stats == "scene" and cut):
                if i > start:
                    outs.append(model.stylize_tensor(x[start:i], stats=state["stats"]))
                state["stats"], start = model.capture_stats(x[i:i + 1]), i
        outs.append(model.stylize_tensor(x[start:], stats=state["stats"]))
        return torch.cat(outs)

    return step
