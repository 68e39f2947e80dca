"""ImageToImageModule and its callbacks: learning, checkpoints without VGG, resume, export, NaN, Ctrl-C."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from nst.errors import NSTError
from nst.models.modelfile import load_lightning_checkpoint, load_network
from nst.networks.transformer import TransformerNet
from nst.perceptual.losses import PerceptualLoss
from nst.perceptual.vgg import load_vgg
from nst.training.callbacks import ExportOnEnd, NaNGuard, SampleGrid
from nst.training.checkpoints import AtomicCheckpointIO, GracefulInterrupt, StepCheckpoint
from nst.training.module import ImageToImageModule

STYLE = {"relu1_2": 1.0, "relu2_2": 1.0}  # a shallow VGG keeps these tests fast


def make_module(seed: int = 0, **kwargs) -> ImageToImageModule:
    torch.manual_seed(seed)
    vgg = load_vgg("vgg16", "random", layers=list(STYLE), seed=0)
    loss = PerceptualLoss(vgg, {"relu2_2": 1.0}, STYLE, content_weight=1.0, style_weight=10.0, tv_weight=1.0)
    stripes = (torch.arange(48).view(1, 1, 1, 48) % 8 < 4).float().expand(1, 3, 48, 48)
    loss.set_style([stripes * torch.tensor([0.9, 0.3, 0.1]).view(1, 3, 1, 1) + 0.05])
    meta = {"style": ["stripes.png"], "loss": {"style_weight": 10.0}}
    return ImageToImageModule(TransformerNet(channels=8, num_residual=1), loss, export_metadata=meta,
                              **kwargs)


class Photos(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        return {"input": torch.rand(3, 32, 32, generator=g)}


def trainer(tmp_path, steps: int, *callbacks: pl.Callback, every: int = 2) -> pl.Trainer:
    ckpt = StepCheckpoint(dirpath=tmp_path / "checkpoints", every_n_train_steps=every, save_top_k=0,
                          save_last=True)
    return pl.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path, plugins=[AtomicCheckpointIO()],
                      callbacks=[ckpt, *callbacks])


def loader() -> DataLoader:
    return DataLoader(Photos(), batch_size=2, shuffle=True)


def test_a_few_steps_lower_the_loss_on_one_batch():
    module = make_module()
    opt = module.configure_optimizers()
    batch = {"input": torch.rand(2, 3, 32, 32)}
    losses = []
    for _ in range(8):
        loss = module.training_step(batch, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


def test_module_state_holds_only_the_network():
    module = make_module()
    keys = list(module.state_dict())
    assert keys and all(k.startswith("net.") for k in keys)


def test_checkpoint_has_no_vgg_and_loads_as_a_model(tmp_path):
    module = make_module()
    trainer(tmp_path, 2).fit(module, loader())
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2
    assert not [k for k in ckpt["state_dict"] if not k.startswith("net.")]
    assert ckpt["hyper_parameters"]["net_config"] == {"channels": 8, "num_residual": 1, "output": "sigmoid",
                                                      "head_input": False}
    # crops and shuffle continue the same stream on resume
    assert ckpt["torch_rng_state"].dtype == torch.uint8
    net, meta = load_lightning_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert meta["style"] == ["stripes.png"]
    x = torch.rand(1, 3, 20, 28)
    module.eval()
    with torch.no_grad():
        assert torch.equal(net(x), module.net(x))


def test_resume_continues_at_the_same_step_with_the_optimizer_state(tmp_path):
    trainer(tmp_path, 3, every=3).fit(make_module(), loader())
    resumed = make_module(seed=1)
    t = trainer(tmp_path, 5, every=100)
    t.fit(resumed, loader(), ckpt_path=tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert t.global_step == 5
    # Adam's per-parameter step count: 3 restored + 2 new (a fresh optimizer would say 2).
    state = t.optimizers[0].state_dict()["state"]
    assert int(next(iter(state.values()))["step"]) == 5
    # ... and the final state is written at the end, not only every 100 steps.
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 5


def test_export_at_the_end_loads_with_identical_outputs(tmp_path):
    module = make_module()
    path = tmp_path / "stripes.safetensors"
    trainer(tmp_path, 2, ExportOnEnd(path, module.hparams.export_metadata)).fit(module, loader())
    net, meta = load_network(path)
    assert meta["steps"] == 2 and meta["style"] == ["stripes.png"]
    x = torch.rand(2, 3, 24, 36)
    module.eval()
    with torch.no_grad():
        assert torch.equal(net(x), module.net(x))


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    module = make_module()
    path = tmp_path / "stripes.safetensors"

    class Poison(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 2:  # after the checkpoint at step 2
                with torch.no_grad():
                    pl_module.net.head[1].bias.fill_(float("nan"))

    t = trainer(tmp_path, 6, Poison(), NaNGuard(), ExportOnEnd(path, {}))
    with pytest.raises(NSTError, match="diverged at step 3.*last.ckpt"):
        t.fit(module, loader())
    assert not path.exists()
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_interrupt_saves_a_checkpoint_and_skips_the_export(tmp_path):
    module = make_module()
    path = tmp_path / "stripes.safetensors"
    interrupt = GracefulInterrupt()

    class CtrlC(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 3:
                interrupt.request()  # what the SIGINT handler does

    t = trainer(tmp_path, 10, CtrlC(), interrupt, ExportOnEnd(path, {}), every=100)
    t.fit(module, loader())
    assert interrupt.interrupted_at == 4 and t.global_step == 4
    assert torch.load(interrupt.checkpoint, weights_only=True)["global_step"] == 4
    assert not path.exists()


def test_sample_grid_writes_pictures_and_val_losses(tmp_path):
    module = make_module()
    grid = SampleGrid([torch.rand(1, 3, 24, 32), torch.rand(1, 3, 32, 20)], tmp_path / "samples",
                      every_n_steps=2)
    trainer(tmp_path, 3, grid).fit(module, loader())
    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert names == ["step_000002.png", "step_000003.png"]


def test_callbacks_without_paths_write_into_the_run_folder(tmp_path):
    # what configs/mode/train.yaml builds: folders and file names come from default_root_dir
    from nst.io.image import save_image

    save_image(torch.rand(1, 3, 20, 28), tmp_path / "photos" / "a.png")
    module = make_module()
    run = tmp_path / "run"
    callbacks = [StepCheckpoint(every_n_train_steps=2), SampleGrid(str(tmp_path / "photos"), every_n_steps=2),
                 ExportOnEnd()]
    pl.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False,
               enable_model_summary=False, default_root_dir=run, callbacks=callbacks).fit(module, loader())
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert [p.name for p in (run / "samples").iterdir()] == ["step_000002.png"]
    assert callbacks[2].exported == run / "stripes.safetensors"  # the style's stem
    assert load_network(run / "stripes.safetensors")[1]["steps"] == 2


def test_sigterm_saves_a_checkpoint_between_steps(tmp_path):
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    interrupt = GracefulInterrupt()

    class Term(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 3:
                trainer._signal_connector.received_sigterm = True  # what Lightning's SIGTERM handler sets

    t = trainer(tmp_path, 10, Term(), interrupt, every=100)
    with pytest.raises(SIGTERMException):
        t.fit(make_module(), loader())
    assert interrupt.interrupted_at == 4
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4


def test_a_batch_without_target_is_its_own_target():
    x = torch.rand(2, 3, 8, 8)
    assert all(t is x for t in ImageToImageModule.split({"input": x}))
    assert all(t is x for t in ImageToImageModule.split(x))


def test_the_loss_sees_the_batch_target_when_there_is_one():
    from nst.perceptual.losses import PixelLoss

    torch.manual_seed(0)
    net = TransformerNet(channels=4, num_residual=0)
    module = ImageToImageModule(net, PixelLoss())
    x, target = torch.rand(2, 3, 16, 16), torch.zeros(2, 3, 16, 16)
    loss = module.training_step({"input": x, "target": target}, 0)
    assert torch.allclose(loss, net(x).pow(2).mean())
    assert not torch.allclose(loss, module.training_step({"input": x}, 0))


def test_sample_runs_in_eval_mode_and_restores_training():
    from nst.perceptual.losses import PixelLoss

    module = ImageToImageModule(TransformerNet(channels=4, num_residual=0), PixelLoss()).train()
    y, terms = module.sample(torch.rand(1, 3, 16, 16), target=torch.zeros(1, 3, 16, 16))
    assert module.training and y.shape == (1, 3, 16, 16) and set(terms) == {"loss", "pixel"}
    assert terms["loss"] == pytest.approx(float(y.pow(2).mean()))
