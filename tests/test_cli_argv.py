"""The overrides checked before Hydra (nst/cli/argv.py) and the run folder an explicit output= implies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nst.cli import config_dir
from nst.cli.argv import check, is_checkable, run_folder
from nst.errors import NSTError
from nst.io.image import save_image

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent


def nst(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nst", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_misspelled_key_is_one_line_with_the_close_key(tmp_path):
    res = nst("mode=stylize", "strenght=1", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == "nst: error: unknown key 'strenght' (did you mean 'strength'?)"
    assert not (tmp_path / "outputs").exists()


def test_misspelled_nested_key_suggests_the_full_path():
    with pytest.raises(NSTError, match=r"unknown key 'data.batchsize' \(did you mean 'data.batch_size'\?\)"):
        check(["data.batchsize=2"], config_dir())


def test_key_of_another_mode_says_which():
    with pytest.raises(NSTError, match="it is a key of mode=stylize, not of mode=train"):
        check(["mode=train", "strength=1"], config_dir())


def test_unknown_mode_lists_the_modes_in_one_line(tmp_path):
    res = nst("mode=dance", cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown mode 'dance'" in lines[0]
    for mode in ("train", "gatys", "stylize", "compare", "export"):
        assert mode in lines[0]


def test_unknown_group_option_suggests_the_close_one():
    with pytest.raises(NSTError, match=r"unknown trainer 'gpux' \(did you mean 'gpu'\? choose from"):
        check(["trainer=gpux"], config_dir())


@pytest.mark.parametrize("overrides", [
    ["mode=stylize", "strength=0.5"],
    ["experiment=quickstart", "samples.every=3", "data.batch_size=1"],
    ["seed=1,2", "trainer=cpu,gpu"],        # sweeps: keys and every option are checked
    ["+my_new_key=1", "~samples"],          # adding and deleting on purpose pass through
    ["hydra.run.dir=/tmp/x", "style=[a.jpg,b.jpg]"],
    ["experiment=quickstart", "data=folder", "data.root=/data/coco"],  # a mandatory ??? key, given
])
def test_valid_overrides_pass(overrides):
    assert check(overrides, config_dir()).mode in ("train", "stylize")


def test_a_swept_option_is_checked_too():
    with pytest.raises(NSTError, match="unknown trainer 'gpx'"):
        check(["trainer=cpu,gpx"], config_dir())


def test_flags_that_take_words_turn_checking_off():
    assert not is_checkable(["mode=gatys", "--cfg", "job"])
    assert is_checkable(["-m", "seed=1,2"])


def test_run_folder_train_is_the_output_folder():
    cfg = check(["mode=train", "output=runs/a b"], config_dir())
    assert run_folder(cfg, ["mode=train", "output=runs/a b"]) == ["hydra.run.dir='runs/a b'"]


def test_run_folder_respects_an_explicit_hydra_run_dir_and_no_output():
    cfg = check(["mode=stylize"], config_dir())
    assert run_folder(cfg, ["mode=stylize", "output=o.jpg", "hydra.run.dir=/tmp/x"]) == []
    assert run_folder(cfg, ["mode=stylize"]) == []


def test_models_mode_leaves_no_outputs_folder(tmp_path):
    res = nst("mode=models", cwd=tmp_path)
    assert res.returncode == 0 and "starry_night" in res.stdout, res.stderr
    assert list(tmp_path.iterdir()) == []


def test_stylize_with_output_leaves_no_outputs_folder(tmp_path):
    save_image(torch.rand(1, 3, 40, 48), tmp_path / "in.png")
    res = nst("mode=stylize", "checkpoint=starry_night", f"input={tmp_path / 'in.png'}",
              f"output={tmp_path / 'res' / 'o.png'}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "res"]
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == ["o.png"]


def test_train_with_output_keeps_its_config_and_log_in_the_output_folder(tmp_path):
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        save_image(torch.rand(1, 3, 40, 48, generator=g), tmp_path / "photos" / f"{i}.png")
    save_image(torch.rand(1, 3, 48, 48, generator=g), tmp_path / "style.png")
    run = tmp_path / "run"
    res = nst("mode=train", "vgg.weights=random", "logger=csv", "trainer.enable_progress_bar=false",
              "data.crop_size=32",
        "style_size=48", "model.net.channels=8", "model.net.num_residual=1", "data.batch_size=2",
              "data.min_images=2", "data.num_workers=0", "samples.images=null", "trainer.max_steps=2",
              "~loss.style_layers.relu3_3", "~loss.style_layers.relu4_3", "threads=1",
              f"style={tmp_path / 'style.png'}", f"data.root={tmp_path / 'photos'}", f"output={run}",
              cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "outputs").exists()
    assert (run / ".hydra" / "config.yaml").is_file()
    assert (run / "style.safetensors").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    # stderr is a pipe here: progress comes as log lines, not tqdm redraws
    logs = res.stdout + res.stderr
    assert "\r" not in logs and "step 2/2 (100 %), loss" in logs


def test_gatys_with_output_keeps_its_steps_beside_the_result(tmp_path):
    g = torch.Generator().manual_seed(0)
    save_image(torch.rand(1, 3, 32, 32, generator=g), tmp_path / "c.png")
    save_image(torch.rand(1, 3, 32, 32, generator=g), tmp_path / "s.png")
    res = nst("mode=gatys", f"content={tmp_path / 'c.png'}", f"style={tmp_path / 's.png'}", "size=32",
              "iterations=2", "save_every=1", "vgg.weights=random", "logger=none",
              "~loss.content_layers", "+loss.content_layers={relu1_2: 1.0}", "~loss.style_layers",
              "+loss.style_layers={relu1_1: 1.0}",
              f"output={tmp_path / 'res' / 'out.png'}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "outputs").exists()
    assert (tmp_path / "res" / "out.png").is_file()
    assert any((tmp_path / "res" / "out_run" / "steps").iterdir())
