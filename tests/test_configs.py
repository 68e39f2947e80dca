"""Every option of every config group composes, and the objects it describes instantiate."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import compose_config  # noqa: E402
from hydra.utils import instantiate
from omegaconf import OmegaConf

from nst.cli import config_dir
from nst.cli.build import config_loss

CONFIGS = Path(config_dir())
BASE = ["vgg.weights=random", "logger=none"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def compose_cfg(tmp_path, *overrides: str):
    return compose_config([*BASE, f"paths.output_dir={tmp_path}", *overrides])


@pytest.mark.parametrize("group", ["mode", "vgg", "loss", "model", "data", "trainer", "logger", "experiment"])
def test_group_has_options(group):
    assert options(group), f"configs/{group} is empty"


@pytest.mark.parametrize("mode", options("mode"))
def test_every_mode_composes_and_names_itself(tmp_path, mode):
    cfg = compose_cfg(tmp_path, f"mode={mode}")
    assert cfg.mode == mode


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes(tmp_path, experiment):
    cfg = compose_cfg(tmp_path, f"experiment={experiment}")
    OmegaConf.resolve(cfg) if experiment != "johnson2016" else None
    assert cfg.mode


@pytest.mark.parametrize("loss", options("loss"))
def test_every_loss_instantiates_on_its_network(tmp_path, loss):
    vgg = "vgg19" if "vgg19" in loss else "vgg16"
    cfg = compose_cfg(tmp_path, f"loss={loss}", f"vgg={vgg}")
    built = config_loss(cfg)
    if "content_layers" not in cfg.loss:  # a pixel loss (loss=sr_pixel): no VGG at all
        assert not hasattr(built, "vgg") and type(built).__name__ == cfg.loss._target_.rsplit(".", 1)[-1]
        return
    assert set(built.layers) == set(cfg.loss.content_layers) | set(cfg.loss.style_layers)


@pytest.mark.parametrize("model", options("model"))
def test_every_model_instantiates_its_lightning_module(tmp_path, model):
    import torch

    from nst.gatys.module import GatysModule
    from nst.perceptual.losses import PixelLoss
    from nst.training.module import ImageToImageModule

    cfg = compose_cfg(tmp_path, f"model={model}")
    if "net" in cfg.model:  # a trained network: the LightningModule with its net and optimizer factory
        module = instantiate(cfg.model, loss=PixelLoss())
        assert isinstance(module, ImageToImageModule)
        assert sum(p.numel() for p in module.net.parameters()) > 0
    else:  # a per-image optimizer: a partial the run completes with the loss and the starting image
        module = instantiate(cfg.model)(loss=config_loss(cfg), init=torch.rand(1, 3, 16, 16))
        assert isinstance(module, GatysModule)
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    assert type(optimizer).__name__ == cfg.model.optimizer._target_.rsplit(".", 1)[-1]


@pytest.mark.parametrize("trainer", options("trainer"))
def test_every_trainer_config_has_the_gpu_settings(tmp_path, trainer):
    cfg = compose_cfg(tmp_path, f"trainer={trainer}")
    for key in ("accelerator", "devices", "precision", "strategy", "num_nodes"):
        assert key in cfg.trainer
    assert {"channels_last", "compile"} <= set(cfg.perf)


def test_cpu_trainer_instantiates(tmp_path):
    from nst.cli.build import build_trainer
    from nst.hardware import cpu_has_fast_bf16

    cfg = compose_cfg(tmp_path, "trainer=cpu", "trainer.max_steps=1")
    assert cfg.trainer.precision == "auto"  # made concrete by build_trainer, from the CPU's flags
    trainer = build_trainer(cfg, logger=False, enable_checkpointing=False)
    assert trainer.max_steps == 1
    want = "bf16-mixed" if cfg.mode == "train" and cpu_has_fast_bf16() else "32-true"
    assert str(trainer.precision) == want


@pytest.mark.parametrize("logger", [o for o in options("logger") if o != "none"])
def test_every_logger_instantiates_offline(tmp_path, logger):
    cfg = compose_cfg(tmp_path, f"logger={logger}")
    made = instantiate(cfg.logger)
    assert Path(made.save_dir) == Path(cfg.paths.output_dir)  # its files stay in the run folder
    assert cfg.logger.get("offline", True) is True  # wandb offline: nothing leaves the machine


def test_style_weight_is_overridable(tmp_path):
    assert compose_cfg(tmp_path, "loss.style_weight=123").loss.style_weight == 123


def test_asset_resolver_points_into_the_package(tmp_path):
    from nst.cli import asset  # noqa: F401  (importing nst.cli registers the resolver)

    cfg = OmegaConf.create({"p": "${asset:styles/starry_night.jpg}"})
    assert Path(cfg.p).is_file()


def test_compare_judges_by_johnsons_protocol_by_default(tmp_path):
    # Gatys from white noise, snapshots up to 500 iterations, with a line search (never backwards)
    cfg = compose_cfg(tmp_path, "mode=compare")
    assert cfg.init == "noise" and max(cfg.snapshots) == 500
    assert cfg.model.optimizer.line_search_fn == "strong_wolfe"


def test_quickstart_schedule_spans_the_whole_run(tmp_path):
    cfg = compose_cfg(tmp_path, "experiment=quickstart", "trainer.max_steps=77")
    assert cfg.model.scheduler.total_steps == 77 and cfg.model.scheduler.max_lr == cfg.model.optimizer.lr
