"""Stylizing a folder across processes (nst.inference.distributed): each file written once, one summary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from nst.inference.distributed import merge
from nst.inference.jobs import Summary
from nst.inference.stylize import Stylizer
from nst.io.image import load_image, save_image
from nst.models.modelfile import load_network, save_model
from nst.networks.transformer import TransformerNet


def test_merge_adds_the_files_and_keeps_the_longest_time():
    a = Summary(written=[Path("a")], failed=[(Path("x"), "bad")], seconds=2.0)
    b = {"written": [Path("b")], "failed": [], "skipped": [Path("c")], "seconds": 3.0}
    out = merge([a, b])
    assert out.written == [Path("a"), Path("b")] and out.skipped == [Path("c")]
    assert len(out.failed) == 1 and out.seconds == 3.0


def test_spawned_workers_are_refused_in_one_line():
    from omegaconf import OmegaConf

    from nst.cli.stylize import distributed
    from nst.errors import NSTError

    assert not distributed(OmegaConf.create({"trainer": {"devices": 1, "strategy": "auto"}}))
    assert distributed(OmegaConf.create({"trainer": {"devices": 2, "strategy": "auto"}}))
    try:
        distributed(OmegaConf.create({"trainer": {"devices": 2, "strategy": "ddp_spawn"}}))
    except NSTError as e:
        assert "strategy=ddp" in str(e)
    else:
        raise AssertionError("ddp_spawn was accepted")


def test_two_cpu_processes_split_a_folder_and_write_every_file_once(tmp_path):
    torch.manual_seed(0)
    net = TransformerNet(channels=8, num_residual=1)
    model = save_model(tmp_path / "tiny.safetensors", net, {"style": ["s"]})
    for i in range(7):  # odd: a padding sampler would give one file to both ranks
        save_image(torch.rand(1, 3, 20 + i, 24, generator=torch.Generator().manual_seed(i)),
                   tmp_path / "in" / f"p{i}.png")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    res = subprocess.run([sys.executable, "-m", "nst", "mode=stylize", f"checkpoint={model}", "logger=none",
                          f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}", "trainer.accelerator=cpu",
                          "trainer.devices=2", "trainer.strategy=ddp"],
                         capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    summaries = [ln for ln in res.stdout.splitlines() if ln.startswith("stylize:")]
    assert len(summaries) == 1 and "7 written, 0 failed, 0 skipped" in summaries[0], res.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"p{i}.png" for i in range(7)]
    net, meta = load_network(model)
    one = Stylizer(net, meta).stylize_tensor(load_image(tmp_path / "in" / "p3.png"))
    torch.testing.assert_close(load_image(tmp_path / "out" / "p3.png"), one, atol=1 / 255, rtol=0)
    assert not (tmp_path / "outputs").exists()  # output= given: no run folder, on either rank
