"""``nst mode=train`` through the composed config: tiny net, random VGG, 32 px crops, a few steps."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import compose_config  # noqa: E402
from hydra.utils import instantiate
from safetensors import safe_open

import nst.cli
from nst.errors import NSTError
from nst.io.files import file_digest
from nst.io.image import save_image
from nst.models.modelfile import load_network
from nst.networks.transformer import TransformerNet

pytestmark = pytest.mark.e2e

TINY = ["debug=tiny", "logger=csv", "trainer.max_steps=4", "trainer.log_every_n_steps=1",
        "ckpt_every=2", "samples.every=2", "~loss.style_layers.relu3_3",
        "~loss.style_layers.relu4_3"]  # shallow VGG: fast


@pytest.fixture
def files(tmp_path, image):
    """Three photos, a painting and a sample photo on disk."""
    for i in range(3):
        save_image(torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(i)),
                   tmp_path / "photos" / f"{i}.png")
    stripes = (torch.arange(48).view(1, 1, 1, 48) % 8 < 4).float().expand(1, 3, 48, 48)
    save_image(stripes * torch.tensor([0.9, 0.3, 0.1]).view(1, 3, 1, 1) + 0.05, tmp_path / "waves.png")
    save_image(image, tmp_path / "sample.png")
    return tmp_path


def config(tmp_path, *overrides, base=("mode=train",)):
    return compose_config([*base, f"paths.output_dir={tmp_path / 'run'}", *overrides])


def train_config(files, *overrides):
    return config(files, *TINY, f"data.root={files / 'photos'}", f"style={files / 'waves.png'}",
                  f"samples.images={files / 'sample.png'}", f"output={files / 'out'}", *overrides)


def test_train_writes_checkpoint_samples_and_a_self_describing_model(files):
    path = nst.cli.run(train_config(files, f"stylize_after={files / 'sample.png'}"))
    out = files / "out"
    assert path == out / "waves.safetensors"
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    assert (out / "side_by_side.jpg").is_file() and (out / "sample_waves.jpg").is_file()
    with safe_open(str(path), "pt") as f:
        doc = json.loads(f.metadata()["nst"])
    assert doc["network"] == "transformer" and doc["format_version"] == 2
    meta = doc["card"]
    assert meta["steps"] == 4 and meta["style"] == ["waves.png"] and meta["crop"] == 32
    assert meta["style_digest"] == [file_digest(files / "waves.png")]
    assert meta["vgg"] == {"arch": "vgg16", "weights": "random"}
    assert meta["loss"]["style_layers"] == {"relu1_2": 1.0, "relu2_2": 1.0}
    net, _ = load_network(path)
    assert net.config == {"channels": 8, "num_residual": 1, "output": "sigmoid", "head_input": False}


def test_every_loss_term_is_logged(files):
    nst.cli.run(train_config(files))
    # the logs go into the run's output folder, beside its checkpoints (not Hydra's outputs/DATE/TIME)
    header = next((files / "out" / "csv").rglob("metrics.csv")).read_text().splitlines()[0].split(",")
    for name in ("train/loss", "train/content", "train/style", "train/tv", "train/style/relu1_2",
                 "train/content/relu2_2", "val/loss", "val/style", "data/skipped"):
        assert name in header


def test_a_stability_weight_adds_and_logs_the_networks_stability_terms(files):
    nst.cli.run(train_config(files, "loss.stability_weight=100"))
    rows = next((files / "out" / "csv").rglob("metrics.csv")).read_text().splitlines()
    header = rows[0].split(",")
    for name in ("train/stability", "train/stability/warp", "train/stability/noise"):
        assert name in header
    first = dict(zip(header, rows[1].split(",")))
    parts = sum(float(first[f"train/{k}"]) for k in ("content", "style", "tv", "stability"))
    assert float(first["train/loss"]) == pytest.approx(parts, rel=1e-4)


def test_init_from_starts_the_network_from_another_models_weights(files, monkeypatch):
    first = nst.cli.run(train_config(files, "trainer.max_steps=2"))
    started = {}
    real = nst.cli.train.ImageToImageModule.on_fit_start

    def record(module):  # the weights the optimizer starts from
        started.update({k: v.clone() for k, v in module.net.state_dict().items()})
        return real(module)

    monkeypatch.setattr(nst.cli.train.ImageToImageModule, "on_fit_start", record)
    second = nst.cli.run(train_config(files, f"init_from={first}", f"output={files / 'second'}", "seed=5"))
    source = load_network(first)[0].state_dict()
    assert all(torch.equal(started[k], v) for k, v in source.items())
    meta = load_network(second)[1]
    assert meta["init_from"]["model"] == str(first) and meta["init_from"]["style"] == ["waves.png"]


def test_init_from_another_architecture_is_one_line(files):
    first = nst.cli.run(train_config(files, "trainer.max_steps=2"))
    with pytest.raises(NSTError, match=r"init_from=.*'channels': 8.*'channels': 4"):
        nst.cli.run(train_config(files, f"init_from={first}", "model.net.channels=4",
                                 f"output={files / 'b'}"))


def test_callbacks_are_listed_in_config_and_one_can_be_dropped(files):
    out = files / "no_samples"
    path = nst.cli.run(train_config(files, "callbacks.samples=null", "samples.every=1", f"output={out}"))
    assert path.is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    assert not (out / "samples").exists()


def test_a_callback_without_a_target_is_one_line(files):
    with pytest.raises(NSTError, match="callbacks.extra: needs a _target_"):
        nst.cli.run(train_config(files, "+callbacks.extra={every: 3}"))
    with pytest.raises(NSTError, match="callbacks.extra: needs a _target_"):
        nst.cli.run(train_config(files, "+callbacks.extra=3"))


def test_samples_null_means_no_samples(files):
    out = files / "samples_null"
    assert nst.cli.run(train_config(files, "samples=null", f"output={out}")).is_file()
    assert not (out / "samples").exists()


def test_without_the_checkpoint_callback_no_checkpoint_is_written(files, capsys):
    out = files / "no_ckpt"
    path = nst.cli.run(train_config(files, "callbacks.checkpoint=null", "callbacks.export=false",
                                    f"output={out}"))
    assert not path.exists() and not list(out.rglob("*.ckpt"))
    assert "no model exported (callbacks.export is off); no checkpoint either" in capsys.readouterr().out


def test_a_scheduler_changes_the_learning_rate_every_step(files):
    sched = ("model.scheduler={_target_:torch.optim.lr_scheduler.OneCycleLR,_partial_:true,max_lr:0.01,"
             "total_steps:4,pct_start:0.5}")
    nst.cli.run(train_config(files, sched))
    ckpt = torch.load(files / "out" / "checkpoints" / "last.ckpt", weights_only=True)
    state = ckpt["lr_schedulers"][0]
    assert state["_step_count"] == 5 and state["total_steps"] == 4  # stepped per step, not per epoch


def test_resume_past_the_end_of_a_schedule_is_one_line(files):
    sched = ("model.scheduler={_target_:torch.optim.lr_scheduler.OneCycleLR,_partial_:true,max_lr:0.01,"
             "total_steps:${trainer.max_steps}}")
    nst.cli.run(train_config(files, sched, "trainer.max_steps=2"))
    with pytest.raises(NSTError, match="schedule ends at step 2.*trainer.max_steps=4"):
        nst.cli.run(train_config(files, sched, "trainer.max_steps=4", "resume=true"))


def test_resume_true_continues_to_the_same_final_step(files):
    nst.cli.run(train_config(files, "trainer.max_steps=2"))
    path = nst.cli.run(train_config(files, "trainer.max_steps=4", "resume=true"))
    ckpt = torch.load(files / "out" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4
    assert load_network(path)[1]["steps"] == 4


def test_checkpoints_carry_the_training_seconds_across_a_resume(files):
    nst.cli.run(train_config(files, "trainer.max_steps=2"))
    first = torch.load(files / "out" / "checkpoints" / "last.ckpt", weights_only=True)["train_seconds"]
    nst.cli.run(train_config(files, "trainer.max_steps=4", "resume=true"))
    second = torch.load(files / "out" / "checkpoints" / "last.ckpt", weights_only=True)["train_seconds"]
    assert 0 < first < second


def test_a_corrupt_last_checkpoint_names_the_newest_readable_one(files):
    nst.cli.run(train_config(files, "trainer.max_steps=2", "ckpt_every=1", "ckpt_keep_all=true"))
    folder = files / "out" / "checkpoints"
    kept = sorted(folder.glob("step_*.ckpt"))
    assert len(kept) >= 2
    last = folder / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # a disk that filled up mid-write, or a bad copy
    kept[-1].write_bytes(b"")                    # and the newest step checkpoint is empty too
    with pytest.raises(NSTError) as e:
        nst.cli.run(train_config(files, "trainer.max_steps=4", "resume=true"))
    message = str(e.value)
    assert str(last) in message and "not a readable checkpoint" in message and "\n" not in message
    assert f"resume={kept[-2]}" in message
    path = nst.cli.run(train_config(files, "trainer.max_steps=4", f"resume={kept[-2]}"))  # and it works
    assert load_network(path)[1]["steps"] == 4


def test_training_survives_an_unwritable_log_folder(files, caplog):
    (files / "out").mkdir()
    (files / "out" / "csv").write_text("a file where the CSV logger wants its folder\n")
    path = nst.cli.run(train_config(files))
    assert path.is_file() and load_network(path)[1]["steps"] == 4  # the run and its model are intact
    assert caplog.text.count("failed, training continues without it") == 1


def test_resume_without_a_checkpoint_is_an_error(files):
    with pytest.raises(NSTError, match="resume=true: no checkpoint"):
        nst.cli.run(train_config(files, "resume=true"))


def test_resume_with_another_architecture_is_an_error(files):
    nst.cli.run(train_config(files, "trainer.max_steps=2"))
    with pytest.raises(NSTError, match="trained with model"):
        nst.cli.run(train_config(files, "resume=true", "model.net.channels=4"))


def test_empty_data_folder_fails_before_training(files):
    (files / "empty").mkdir()
    with pytest.raises(NSTError, match="data.root"):
        nst.cli.run(train_config(files, f"data.root={files / 'empty'}"))
    assert not (files / "out").exists()


def test_quickstart_composes_and_builds_its_objects(tmp_path):
    cfg = config(tmp_path, base=("experiment=quickstart",))
    assert cfg.mode == "train" and cfg.stylize_after and cfg.style.endswith(".jpg")
    net = instantiate(cfg.model.net)
    assert isinstance(net, TransformerNet)
    data = instantiate(cfg.data)
    data.setup("fit")
    assert data.dataset[0]["input"].shape == (3, cfg.data.crop_size, cfg.data.crop_size)


def test_johnson2016_needs_the_data_root(tmp_path):
    cfg = config(tmp_path, "vgg.weights=random", "style=x.jpg", base=("experiment=johnson2016",))
    assert cfg.trainer.max_steps == 40000 and cfg.data.batch_size == 4 and cfg.model.net.channels == 32
    with pytest.raises(NSTError, match="data.root"):
        nst.cli.run(cfg)


def _progress_cfg(kind="auto", bar=True):
    from omegaconf import OmegaConf
    return OmegaConf.create({"progress": {"kind": kind, "every": 7}, "trainer": {"enable_progress_bar": bar}})


@pytest.mark.parametrize("kind,tty,bar_on,lines", [
    ("auto", True, True, 0), ("auto", False, False, 1), ("bar", False, True, 0), ("lines", True, False, 1),
    ("none", True, False, 0)])
def test_progress_kind_chooses_bar_or_lines(kind, tty, bar_on, lines):
    from nst.cli.train import progress
    from nst.training.callbacks import ProgressLines
    bar, extra = progress(_progress_cfg(kind), tty=tty)
    assert bar is bar_on and len(extra) == lines
    assert all(isinstance(cb, ProgressLines) and cb.every == 7 for cb in extra)


def test_progress_auto_on_a_terminal_respects_a_disabled_bar():
    from nst.cli.train import progress
    assert progress(_progress_cfg("auto", bar=False), tty=True)[0] is False


def test_progress_unknown_kind_is_one_line():
    from nst.cli.train import progress
    with pytest.raises(NSTError, match="progress.kind='tqdm'"):
        progress(_progress_cfg("tqdm"))


def test_the_old_size_spelling_still_sets_the_crop(files, caplog):
    import logging
    cfg = train_config(files, "data.crop_size=48", "size=32", "trainer.max_steps=1")
    with caplog.at_level(logging.WARNING, logger="nst"):
        nst.cli.run(cfg)
    assert "is now data.crop_size=32" in caplog.text and cfg.data.crop_size == 32


def test_resume_from_a_checkpoint_file_and_the_old_ckpt_path_spelling(files, caplog):
    import logging
    import shutil
    nst.cli.run(train_config(files, "trainer.max_steps=2"))
    saved = shutil.copy(files / "out" / "checkpoints" / "last.ckpt", files / "two.ckpt")
    nst.cli.run(train_config(files, "trainer.max_steps=3", f"resume={saved}"))
    assert torch.load(files / "out" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    with caplog.at_level(logging.WARNING, logger="nst"):
        nst.cli.run(train_config(files, "trainer.max_steps=3", f"ckpt_path={saved}"))
    assert "ckpt_path= is now resume=PATH" in caplog.text
    with pytest.raises(NSTError, match="resume=.*missing.ckpt: no such checkpoint file"):
        nst.cli.run(train_config(files, f"resume={files / 'missing.ckpt'}"))


def test_a_full_disk_at_a_checkpoint_stops_in_one_line_and_keeps_the_last_one(files, monkeypatch):
    import errno
    from pathlib import Path

    nst.cli.run(train_config(files, "trainer.max_steps=2"))
    last = files / "out" / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    real = Path.write_bytes

    def full(self, data):
        if self.name.endswith(".ckpt"):  # the temporary file of the next checkpoint
            real(self, bytes(data)[:100])  # some of it made it to the disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    full_disk = r"last.ckpt: could not be written, the disk is full \(it needs [\d.]+ MB"
    with pytest.raises(NSTError, match=full_disk):
        nst.cli.run(train_config(files, "trainer.max_steps=4", "resume=true"))
    assert last.read_bytes() == before  # the previous checkpoint, unchanged and loadable
    assert torch.load(last, weights_only=True)["global_step"] == 2
    assert not [p.name for p in last.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_full_disk_at_export_keeps_no_partial_model(files, monkeypatch):
    import errno
    from pathlib import Path

    real = Path.write_bytes

    def full(self, data):
        if self.name.endswith(".safetensors"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(NSTError, match=r"waves.safetensors: could not be written, the disk is full"):
        nst.cli.run(train_config(files))
    assert not list((files / "out").glob("*.safetensors")) and not list((files / "out").glob(".*"))
    assert (files / "out" / "checkpoints" / "last.ckpt").is_file()  # the run itself is not lost


@pytest.mark.parametrize("value", ["2", "lots"])
def test_a_bad_strength_ends_is_one_line(files, value):
    with pytest.raises(NSTError, match=f"strength_ends={value}"):
        nst.cli.run(train_config(files, "model.net.strength_input=true", f"strength_ends={value}"))
