"""A trained network against the Gatys optimizer on the same photos, scored by the same loss.

Reproduces Johnson et al. (2016), Fig. 5 / Table 1: the network's one forward pass is compared
with L-BFGS snapshots after N iterations, all evaluated by the PerceptualLoss the network was
trained with (its layers, weights, VGG and style image come from the model file's metadata), so
the numbers are comparable. One optimizer run goes to the largest count; the smaller counts are
snapshots of that run, timed from the start of the optimization (Lightning's setup excluded).

Choices: ``mode=compare`` starts the optimizer from the content photo by default, the stronger
baseline (it starts with no content loss and reaches a network's loss sooner); ``init=noise``
reproduces Johnson et al.'s comparison, which started from white noise. Network time is the median
of ``repeats`` passes after one warm-up, host to device and back included; Gatys time is one run.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from nst.assets import ROOT as ASSETS
from nst.errors import NSTError
from nst.evaluation import runcache
from nst.gatys.module import optimize
from nst.inference.stylize import Stylizer
from nst.io.files import file_digest
from nst.io.image import load_image
from nst.perceptual.build import build_loss
from nst.perceptual.losses import PerceptualLoss

TERMS = ("loss", "content", "style", "tv")


def loss_settings(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The model's loss: ``{arch, weights, content_layers, style_layers, content_weight, style_weight,
    tv_weight, normalize}`` from its metadata (``loss`` and ``vgg`` as nst.cli.train writes them), or
    None when the file does not say.

    A photo anchor (``pixel_weight``: a pixel term against the photo itself) is left out: every
    method, Gatys included, is scored by the terms Gatys optimizes (content, style, TV), whatever
    else a network was trained with. For a strength-conditioned model, scored at its full strength
    s = 1, the anchor weighed nothing anyway (1 - s in training: nst.training.conditions)."""
    loss, vgg = meta.get("loss"), meta.get("vgg")
    if not isinstance(loss, dict) or not loss.get("style_layers"):
        return None
    vgg = vgg if isinstance(vgg, dict) else {}
    settings = {"arch": vgg.get("arch", "vgg16"), "weights": vgg.get("weights", "auto"),
                **{k: v for k, v in loss.items() if not str(k).startswith("_")}}
    settings.pop("pixel_weight", None)
    return settings


def model_loss(settings: dict[str, Any], weights: str | None = None, seed: int = 0) -> PerceptualLoss:
    """The model's own loss from :func:`loss_settings` (style not set yet); ``weights`` overrides
    the weights source (e.g. "random" for a smoke test)."""
    spec = {k: v for k, v in settings.items() if k not in ("arch", "weights")}
    return build_loss(spec, settings["arch"], weights or settings["weights"], seed=seed)


def one_style(meta: dict[str, Any], names: Sequence[str], k: int) -> dict[str, Any]:
    """A multi-style model's card narrowed to its style ``k`` of ``names``: that painting and its
    digest, no blend, so its loss scores against that painting alone."""
    digests = meta.get("style_digest") or [None] * len(names)
    return {**meta, "style": [names[k]], "style_digest": [digests[k]], "style_blend": None}


def resolve_styles(meta: dict[str, Any], model_path: str | Path, override: Sequence[str] = ()) -> list[Path]:
    """The style image(s) the model was trained on: ``override`` if given, else each metadata
    ``style`` entry as a path (absolute, or relative to the model's folder) or a bundled asset name
    (``starry_night.jpg`` -> nst/assets/styles/starry_night.jpg). When the metadata records the
    files' digests, only a file with the same digest is taken: another copy of a painting (another
    size or crop) gives other targets. NSTError names what is missing."""
    if override:
        paths = [Path(p).expanduser() for p in override]
        for p in paths:
            if not p.is_file():
                raise NSTError(f"style={p}: no such file")
        return paths
    names = meta.get("style_paths") or meta.get("style")
    names = [names] if isinstance(names, str) else list(names or [])
    if not names:
        raise NSTError(f"{model_path}: the model's metadata names no style image; pass style=PATH")
    digests = list(meta.get("style_digest") or [None] * len(names))
    found = []
    for name, digest in zip(names, digests):
        p = Path(str(name)).expanduser()
        candidates = [c for c in (p, Path(model_path).parent / p, ASSETS / "styles" / p.name, ASSETS / p)
                      if c.is_file()]
        hit = next((c for c in candidates if digest is None or file_digest(c) == digest), None)
        if hit is None and candidates:
            raise NSTError(f"{model_path}: style image {name!r} found at {candidates[0]}, but it is not the "
                           f"file the model trained on (another copy); pass style=PATH to that file")
        if hit is None:
            raise NSTError(f"{model_path}: style image {name!r} from the model's metadata not found (beside "
                           "the model or among the bundled styles); pass style=PATH")
        found.append(hit)
    return found


def set_styles(loss: PerceptualLoss, paths: Sequence[Path], blend: Sequence[float] | None,
               max_side: int | None) -> None:
    """Gram targets of the style images at ``max_side`` (the model's ``style_size``)."""
    images = [load_image(p, max_side=max_side) for p in paths]
    loss.set_style(images, list(blend) if blend and len(blend) == len(images) else None,
                   names=[str(p) for p in paths])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def loss_terms(loss: PerceptualLoss, image: Tensor, targets: dict[str, Tensor]) -> dict[str, float]:
    """``loss``, ``content``, ``style``, ``tv`` (weighted terms) of ``image`` (1, 3, H, W), float32."""
    device = loss.vgg.mean.device
    out = loss(image.to(device, torch.float32), targets)
    return {k: float(out[k]) for k in TERMS}


@torch.no_grad()
def network_run(stylizer: Stylizer, content: Tensor, repeats: int = 3) -> tuple[Tensor, float]:
    """The stylized (1, 3, H, W) CPU image and the median seconds of ``repeats`` passes after a
    warm-up, each from host memory to the device and back."""
    stylizer.stylize_tensor(content)
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        out = stylizer.stylize_tensor(content)
        _sync(stylizer.device)
        times.append(time.perf_counter() - start)
    return out.float().cpu().clamp(0, 1), statistics.median(times)


class Snapshots(pl.Callback):
    """Copies the best image so far (nst.gatys.module.GatysModule.best_image) and the seconds since the
    optimization started at each count in ``counts`` (the copying itself is not counted)."""

    def __init__(self, counts: Sequence[int]):
        self.counts = set(counts)
        self.images: dict[int, Tensor] = {}
        self.seconds: dict[int, float] = {}
        self._start = 0.0
        self._paused = 0.0

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        _sync(module.device)
        self._start, self._paused = time.perf_counter(), 0.0

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args) -> None:
        step = trainer.global_step
        if step in self.counts:
            _sync(module.device)
            now = time.perf_counter()
            self.seconds[step] = now - self._start - self._paused
            self.images[step] = module.best_image().detach().float().cpu().clone()
            self._paused += time.perf_counter() - now


@dataclass
class GatysRuns:
    """Snapshots {count: (1, 3, H, W)}, seconds {count: s} and the loss before every step (history)."""

    images: dict[int, Tensor]
    seconds: dict[int, float]
    history: list[float]


def gatys_runs(content: Tensor, loss: PerceptualLoss, counts: Sequence[int], *, init: str = "content",
               seed: int = 0, trainer_kwargs: dict | None = None, cache: str | Path | None = None,
               **optimizer: Any) -> GatysRuns:
    """One optimization to ``max(counts)`` iterations with a snapshot at every count. ``optimizer``:
    :func:`nst.gatys.module.optimize`'s ``module=`` (the config's model) or ``optimizer=``, ``lr=``,
    ``channels_last=``... ``cache``: a folder where finished runs are kept
    (:mod:`nst.evaluation.runcache`) and reused (comparing many networks on the same photos runs
    Gatys once)."""
    path = None
    if cache is not None:
        key = runcache.run_key(content, loss, counts, init=init, seed=seed, trainer=trainer_kwargs or {},
                               **optimizer)
        path = Path(cache).expanduser() / f"{key}.pt"
        saved = runcache.load(path)
        if saved is not None:
            return GatysRuns({int(c): t for c, t in saved["images"].items()},
                             {int(c): float(t) for c, t in saved["seconds"].items()},
                             [float(v) for v in saved["history"]])
    snaps = Snapshots(counts)
    result = optimize(content, loss, iterations=max(counts), init=init, seed=seed,
                      trainer_kwargs=trainer_kwargs, callbacks=[snaps], **optimizer)
    runs = GatysRuns(snaps.images, snaps.seconds, [h["loss"] for h in result.history])
    if path is not None:
        runcache.save(path, {"images": {str(c): t for c, t in runs.images.items()},
                             "seconds": {str(c): t for c, t in runs.seconds.items()},
                             "history": runs.history})
    return runs


def best_curve(history: Sequence[float], final: float) -> list[float]:
    """The lowest loss reached within k iterations, k = 0..len(history) (history[k] is the loss
    after k iterations, ``final`` after all of them): the curve of the best iterate, never rising."""
    curve, best = [], float("inf")
    for value in [*history, final]:
        best = min(best, value)
        curve.append(best)
    return curve


def iterations_to_match(curve: Sequence[float], target: float) -> float | None:
    """The iterations Gatys needs to reach a total loss of ``target`` on a never-rising ``curve``
    (curve[k]: the loss after k iterations), interpolated linearly between the two iterations
    around it ("the network matches Gatys at N", Johnson et al. 2016 Fig. 5); None when the run
    never got there, 0 when its start was already as good."""
    for k, value in enumerate(curve):
        if value <= target:
            if k == 0:
                return 0.0
            before = curve[k - 1]
            return k - 1 + (before - target) / (before - value)
    return None


def mean_curve(curves: Sequence[Sequence[float]]) -> list[float]:
    """The mean of several photos' curves, iteration by iteration (over the shortest)."""
    length = min(len(c) for c in curves)
    return [statistics.fmean(c[k] for c in curves) for k in range(length)]


def average(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The mean of every number in the rows' ``network`` and ``gatys`` entries (count by count)."""
    def mean(dicts: list[dict[str, float]]) -> dict[str, float]:
        return {k: statistics.fmean(d[k] for d in dicts) for k in dicts[0]}

    counts = rows[0]["gatys"].keys()
    out: dict[str, Any] = {"network": mean([r["network"] for r in rows]),
                           "gatys": {c: mean([r["gatys"][c] for r in rows]) for c in counts}}
    for key in ("match_iterations", "match_seconds"):
        values = [r.get(key) for r in rows]
        out[key] = statistics.fmean(values) if None not in values else None
    # The median over photos; one Gatys never matched counts as above every matched one.
    ranked = sorted(math.inf if r.get("match_iterations") is None else r["match_iterations"] for r in rows)
    mid = len(ranked) // 2
    median = ranked[mid] if len(ranked) % 2 else (ranked[mid - 1] + ranked[mid]) / 2
    out["match_median"] = None if math.isinf(median) else median
    curves = [r["curve"] for r in rows if r.get("curve")]
    if len(curves) == len(rows):
        # The mean network loss against the mean Gatys curve: Johnson et al.'s averaged comparison.
        out["match_mean_loss"] = iterations_to_match(mean_curve(curves), out["network"]["loss"])
    return out


def compare_photo(stylizer: Stylizer, loss: PerceptualLoss, content: Tensor, counts: Sequence[int], *,
                  repeats: int = 3, device: torch.device | str = "cpu", **gatys: Any
                  ) -> tuple[dict[str, Any], Tensor, GatysRuns]:
    """The network and Gatys (snapshots at ``counts``) on one photo, all scored by ``loss``.

    Returns (the row: size, ``network`` and ``gatys`` terms with seconds, the Gatys iterations that
    reached the network's loss and their estimated seconds), the network's image, the Gatys runs.
    ``gatys``: keyword arguments of :func:`gatys_runs` (module or optimizer, init, seed, trainer_kwargs...).
    """
    image, seconds = network_run(stylizer, content, repeats)
    runs = gatys_runs(content, loss, counts, **gatys)
    loss.to(device)  # Lightning moves the module (and this loss with it) back to the CPU after fit
    targets = loss.content_targets(content.to(device))
    net_terms = {**loss_terms(loss, image, targets), "seconds": seconds}
    scored = {str(c): {**loss_terms(loss, runs.images[c], targets), "seconds": runs.seconds[c]}
              for c in counts}
    last = counts[-1]
    curve = best_curve(runs.history, scored[str(last)]["loss"])
    match = iterations_to_match(curve, net_terms["loss"])
    # Seconds to the match, estimated: every iteration costs about the same (one VGG forward/backward).
    match_s = None if match is None else runs.seconds[last] * match / last
    row = {"height": content.shape[-2], "width": content.shape[-1], "network": net_terms, "gatys": scored,
           "match_iterations": match, "match_seconds": match_s, "curve": curve}
    return row, image, runs
