"""Every ``experiment=`` preset runs: 2 training steps at tiny sizes (random VGG, 8-channel net,
32 px crops), on the CPU even where the preset asks for a GPU. Catches a preset that no longer
composes or instantiates after a rename elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import compose_config  # noqa: E402
from omegaconf import OmegaConf

import nst.cli
from nst.io.image import save_image
from nst.models.modelfile import load_network

pytestmark = pytest.mark.e2e

PRESETS = sorted(p.stem for p in (Path(nst.cli.config_dir()) / "experiment").glob("*.yaml"))
# init_from=null: the tiny net fits no shipped model (test_preset_warm_start_fits checks those)
TINY = ["debug=tiny", "logger=csv", "trainer.max_steps=2", "ckpt_every=1", "samples.every=1",
        "trainer.accelerator=cpu", "trainer.precision=32-true", "threads=1", "init_from=null"]
SHALLOW = ["~loss.style_layers.relu3_3", "~loss.style_layers.relu4_3"]  # the style losses, cut to fit 32 px


def test_there_are_presets():
    assert {"quickstart", "johnson2016"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_trains_two_steps(preset, tmp_path):
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        save_image(torch.rand(1, 3, 40, 48, generator=g), tmp_path / "photos" / f"{i}.png")
    save_image(torch.rand(1, 3, 48, 48, generator=g), tmp_path / "style.png")
    shallow = [] if "sr_" in preset else SHALLOW  # super-resolution losses have no style layers
    style = tmp_path / "style.png"
    styles = [f"styles=[{style},{style}]"] if preset.endswith("_multi") else [f"style={style}"]
    overrides = [f"experiment={preset}", *TINY, *shallow, *styles,
                 f"output={tmp_path / 'run'}", f"paths.output_dir={tmp_path / 'hydra'}"]
    cfg = compose_config(overrides)
    if OmegaConf.is_missing(cfg.data, "root"):  # presets for the user's own photos
        cfg = compose_config([*overrides, f"data.root={tmp_path / 'photos'}"])
    model = nst.cli.run(cfg)
    net, meta = load_network(model)
    assert meta["steps"] == 2 and net.config["channels"] == 8
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_warm_start_fits_its_network(preset):
    """A preset's init_from (a shipped model) has the architecture of the preset's own model."""
    from hydra.utils import instantiate

    from nst.training.finetune import warm_start

    cfg = compose_config([f"experiment={preset}", "paths.output_dir=/tmp/unused"])
    if not cfg.get("init_from"):
        pytest.skip(f"{preset} starts from scratch")
    meta = warm_start(instantiate(cfg.model.net), cfg.init_from)
    assert meta["network"] == "transformer" and meta["steps"] > 0
