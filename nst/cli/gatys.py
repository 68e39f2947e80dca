"""``nst mode=gatys content=photo.jpg style=painting.jpg``: the per-image optimizer of Gatys et al.

Maps the config onto :func:`nst.gatys.optimize`, level by level when ``scales`` asks for a
coarse-to-fine run, and writes the result, intermediate images and a side-by-side picture.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig
from torch import Tensor

from nst.cli.build import (
    as_list,
    build_logger,
    build_loss,
    build_trainer,
    load_styles,
    output_path,
    require,
    set_style,
)
from nst.color import color_mode, match_color, transfer_luminance
from nst.errors import NSTError
from nst.gatys import GatysResult, SaveEvery, optimize
from nst.grid import grid
from nst.image import IMAGE_EXTENSIONS, load_image, resize, save_image
from nst.perceptual.losses import PerceptualLoss

log = logging.getLogger("nst")


def levels(size: int, scales) -> list[int]:
    """Max sides of the coarse-to-fine levels, ending at ``size`` exactly.

    ``scales``: null (one level), a number of levels n (size / 2**(n-1), ..., size / 2, size), or a
    list of max sides (those below ``size`` are kept, in increasing order, then ``size``).
    """
    if scales is None or scales == [] or scales == 1:
        return [size]
    if isinstance(scales, bool):
        raise NSTError(f"scales={scales!r}: give a number of levels or a list of sizes like [128, 256]")
    if isinstance(scales, int):
        if scales < 1:
            raise NSTError(f"scales={scales}: the number of levels must be at least 1")
        return [max(1, round(size / 2 ** k)) for k in range(scales - 1, 0, -1)] + [size]
    sides = as_list(scales)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sides):
        raise NSTError(f"scales={list(sides)}: sizes must be positive whole numbers of pixels")
    return sorted({s for s in sides if s < size}) + [size]


def level_iterations(iterations, count: int) -> list[int]:
    """``iterations`` for each level: one number for every level, or a list with one per level."""
    its = as_list(iterations)
    if len(its) == 1:
        its = its * count
    if len(its) != count or not all(isinstance(i, int) and i >= 1 for i in its):
        raise NSTError(f"iterations={iterations}: give a number >= 1, or one per level ({count} levels)")
    return its


def prepare_style(cfg: DictConfig, loss: PerceptualLoss, content: Tensor, styles: list[Tensor],
                  paths: list[str]) -> None:
    """Set the style targets for a level: styles scaled to ``style_scale`` x the level's max side,
    recoloured to the content's colours first when ``preserve_color=histogram``."""
    side = round(float(cfg.get("style_scale", 1.0)) * max(content.shape[-2:]))
    if side < 1:
        raise NSTError(f"style_scale={cfg.style_scale}: must be positive")
    images = [resize(s, max_side=side) for s in styles]
    if color_mode(cfg.get("preserve_color")) == "histogram":
        images = [match_color(s, content) for s in images]
    set_style(loss, images, paths, as_list(cfg.get("style_blend")))


def side_by_side(images: list[Tensor], height: int, gap: int = 4) -> Tensor:
    """(1, 3, H_i, W_i) images scaled to ``height`` and set side by side on white (nst.grid)."""
    return grid([images], height, gap=gap)


def run(cfg: DictConfig) -> GatysResult:
    content_path = str(require(cfg, "content", "the photo to restyle"))
    size = cfg.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise NSTError(f"size={size!r}: must be a positive whole number of pixels (or null)")
    mode = color_mode(cfg.get("preserve_color"))
    full = load_image(content_path, max_side=size)
    size = max(full.shape[-2:])
    sides = levels(size, cfg.get("scales"))
    its = level_iterations(cfg.iterations, len(sides))
    style_side = round(float(cfg.get("style_scale", 1.0)) * size)
    if style_side < 1:
        raise NSTError(f"style_scale={cfg.style_scale}: must be positive")
    styles, style_paths = load_styles(cfg, max_side=style_side)
    loss = build_loss(cfg)
    out = output_path(cfg, f"{Path(content_path).stem}_{Path(style_paths[0]).stem}.png")
    if out.suffix.lower() not in IMAGE_EXTENSIONS:  # fail now, not after minutes of optimization
        raise NSTError(f"output={out}: unknown image extension (use one of {', '.join(IMAGE_EXTENSIONS)})")
    logger = build_logger(cfg)  # one logger for every level: one run, one set of charts
    init = cfg.get("init", "content")
    result: GatysResult | None = None
    history: list[dict[str, float]] = []
    seconds = 0.0
    for n, (side, steps) in enumerate(zip(sides, its)):
        content = full if side == size else resize(full, max_side=side)
        prepare_style(cfg, loss, content, styles, style_paths)
        last = n == len(sides) - 1
        prefix = "" if last else f"{side}px_"

        def finish(img: Tensor, content: Tensor = content) -> Tensor:
            return transfer_luminance(img, content) if mode == "luminance" else img

        callbacks = [SaveEvery(cfg.save_every, Path(cfg.paths.output_dir) / "steps", prefix, finish)] \
            if cfg.get("save_every") else []
        trainer = build_trainer(cfg, callbacks, logger=logger, max_steps=steps, enable_checkpointing=False)
        result = optimize(content, loss, iterations=steps, optimizer=cfg.optimizer, lr=cfg.get("lr"),
                          init=init if result is None else result.image, seed=cfg.seed, trainer=trainer,
                          history_size=cfg.history_size, line_search=cfg.get("line_search"),
                          channels_last=bool(cfg.get("perf", {}).get("channels_last", False)),
                          log_prefix="gatys" if last else f"gatys_{side}px")
        history += result.history
        seconds += result.seconds
        log.info("gatys %d px: %d steps in %.1f s, loss %.4g -> %.4g (content %.4g, style %.4g)", side, steps,
                 result.seconds, result.history[0]["loss"], result.losses.get("loss", float("nan")),
                 result.losses.get("content", float("nan")), result.losses.get("style", float("nan")))
    assert result is not None
    image = transfer_luminance(result.image, full) if mode == "luminance" else result.image
    # The whole run: every level's steps, their total time.
    result.image, result.history, result.seconds = image, history, seconds
    save_image(image, out)
    style_show = styles[0] if len(styles) == 1 else side_by_side(styles, styles[0].shape[-2], gap=0)
    sbs = save_image(side_by_side([full, style_show, image], image.shape[-2]),
                     out.with_name(f"{out.stem}_sbs.jpg"))
    print(f"gatys: wrote {out} and {sbs} ({sum(its)} steps in {seconds:.1f} s)")
    return result
