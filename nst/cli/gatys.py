"""``nst mode=gatys content=photo.jpg style=painting.jpg``: the per-image optimizer of Gatys et al.

Maps the config onto :func:`nst.gatys.multiscale.coarse_to_fine` (one level unless ``scales`` asks for
more) and writes the result, intermediate images and a side-by-side picture.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig
from torch import Tensor

from nst.cli.build import (
    build_logger,
    build_trainer,
    config_loss,
    gatys_module,
    load_styles,
    set_style,
    set_threads,
)
from nst.cli.values import as_list, output_path, pixels, require
from nst.errors import NSTError
from nst.gatys.module import GatysResult, SaveEvery
from nst.gatys.multiscale import coarse_to_fine, level_iterations, levels
from nst.inference.color import color_mode, match_color, transfer_luminance
from nst.io.grid import grid
from nst.io.image import IMAGE_EXTENSIONS, load_image, resize, save_image
from nst.perceptual.losses import PerceptualLoss

log = logging.getLogger("nst")


def style_side(cfg: DictConfig, size: int, level: int) -> int:
    """The style image's max side for a level of max side ``level`` (the result's is ``size``):
    ``style_size`` px at the result's size (null: the result's own), scaled with the level, so each
    level sees brush strokes of the same relative size."""
    want = pixels(cfg, "style_size", optional=True)
    return max(1, round((want or size) * level / size))


def prepare_style(cfg: DictConfig, loss: PerceptualLoss, content: Tensor, styles: list[Tensor],
                  paths: list[str], size: int) -> None:
    """Set the style targets for a level (:func:`style_side`), recoloured to the content's colours
    first when ``preserve_color=histogram``."""
    side = style_side(cfg, size, max(content.shape[-2:]))
    images = [resize(s, max_side=side) for s in styles]
    if color_mode(cfg.get("preserve_color")) == "histogram":
        images = [match_color(s, content) for s in images]
    set_style(loss, images, paths, as_list(cfg.get("style_blend")))


def side_by_side(images: list[Tensor], height: int, gap: int = 4) -> Tensor:
    """(1, 3, H_i, W_i) images scaled to ``height`` and set side by side on white (nst.io.grid)."""
    return grid([images], height, gap=gap)


def run(cfg: DictConfig) -> GatysResult:
    content_path = str(require(cfg, "content", "the photo to restyle"))
    set_threads(cfg.get("threads"))
    module = gatys_module(cfg)  # configs/model/gatys.yaml: the GatysModule and its optimizer
    size = pixels(cfg, "size", optional=True)
    mode = color_mode(cfg.get("preserve_color"))
    full = load_image(content_path, max_side=size)
    size = max(full.shape[-2:])
    sides = levels(size, cfg.get("scales"))
    its = level_iterations(cfg.iterations, len(sides))
    styles, style_paths = load_styles(cfg, max_side=style_side(cfg, size, size))
    loss = config_loss(cfg)
    out = output_path(cfg, f"{Path(content_path).stem}_{Path(style_paths[0]).stem}.png")
    if out.suffix.lower() not in IMAGE_EXTENSIONS:  # fail now, not after minutes of optimization
        raise NSTError(f"output={out}: unknown image extension (use one of {', '.join(IMAGE_EXTENSIONS)})")
    # With output= there is no Hydra run folder (nst/cli/argv.py): the steps and the logs of this
    # run go beside the result, in <name>_run/.
    run_dir = out.with_name(f"{out.stem}_run") if cfg.get("output") else Path(cfg.paths.output_dir)
    logger = build_logger(cfg, save_dir=run_dir)  # one logger for every level: one run, one set of charts

    def trainer_for(steps: int, side: int, last: bool):
        level = full if side == size else resize(full, max_side=side)  # as coarse_to_fine sizes it

        def finish(img: Tensor) -> Tensor:  # intermediate images get the luminance treatment too
            return transfer_luminance(img, level) if mode == "luminance" else img

        prefix = "" if last else f"{side}px_"
        callbacks = [SaveEvery(cfg.save_every, run_dir / "steps", prefix, finish)] \
            if cfg.get("save_every") else []
        return build_trainer(cfg, callbacks, logger=logger, max_steps=steps, enable_checkpointing=False,
                             default_root_dir=str(run_dir))

    def report(side: int, r: GatysResult) -> None:
        log.info("gatys %d px: %d steps in %.1f s, loss %.4g -> %.4g (content %.4g, style %.4g)", side,
                 len(r.history), r.seconds, r.history[0]["loss"], r.losses.get("loss", float("nan")),
                 r.losses.get("content", float("nan")), r.losses.get("style", float("nan")))

    result = coarse_to_fine(
        full, loss, sides=sides, iterations=its, init=cfg.get("init", "content"),
        set_style=lambda level: prepare_style(cfg, loss, level, styles, style_paths, size),
        trainer_for=trainer_for, on_level=report, seed=cfg.seed,
        module=module)
    seconds = result.seconds
    image = transfer_luminance(result.image, full) if mode == "luminance" else result.image
    result.image = image
    save_image(image, out)
    style_show = styles[0] if len(styles) == 1 else side_by_side(styles, styles[0].shape[-2], gap=0)
    sbs = save_image(side_by_side([full, style_show, image], image.shape[-2]),
                     out.with_name(f"{out.stem}_sbs.jpg"))
    print(f"gatys: wrote {out} and {sbs} ({sum(its)} steps in {seconds:.1f} s)")
    return result
