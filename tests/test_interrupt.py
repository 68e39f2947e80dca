"""Interrupted and failing training through ``nst mode=train``: SIGKILL then resume,
Ctrl-C (SIGINT) saves a checkpoint, a NaN loss stops with the step named and keeps the last good
checkpoint. Tiny config: 8-channel net, 32 px crops, shallow VGG, random weights, one thread."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import compose_config  # noqa: E402

import nst.cli
from nst.errors import NSTError
from nst.io.image import save_image
from nst.models.modelfile import load_lightning_checkpoint, load_network

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
# epoch_size=10 with batch_size=2: 5 steps an epoch, and ckpt_every=3 puts the first checkpoints
# part way through an epoch: resuming there must still see the same batches (nst.training.sampling).
TINY = ["debug=tiny", "mode=train", "logger=none", "data.epoch_size=10", "samples.images=null",
        "ckpt_every=3", "seed=0", "~loss.style_layers.relu3_3", "~loss.style_layers.relu4_3"]
STEPS = 60


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same thread count as the subprocesses: same float sums
    yield
    torch.set_num_threads(threads)


def _files(d: Path) -> list[str]:
    g = torch.Generator().manual_seed(0)
    for i in range(4):
        save_image(torch.rand(1, 3, 40, 48, generator=g), d / "photos" / f"{i}.png")
    save_image(torch.rand(1, 3, 48, 48, generator=g), d / "style.png")
    return [f"style={d / 'style.png'}", f"data.root={d / 'photos'}"]


def run_inprocess(tmp: Path, *overrides: str):
    cfg = compose_config([*TINY, f"paths.output_dir={tmp / 'run'}", *overrides])
    return nst.cli.run(cfg)


def start(tmp: Path, *overrides: str, new_session: bool = False) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "nst", f"hydra.run.dir={tmp / 'hydra'}", *TINY, "threads=1", *overrides]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=new_session)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before {path} appeared: "
                                 f"{proc.stderr.read()}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.02)


def step_of(ckpt: Path) -> int:
    return int(torch.load(ckpt, weights_only=True, map_location="cpu")["global_step"])


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """A run with two DataLoader workers killed with SIGKILL after its first (mid-epoch)
    checkpoint, resumed in-process with resume=true, and an uninterrupted run of the same config
    without workers for reference (the batches depend on neither)."""
    tmp = tmp_path_factory.mktemp("kill")
    data = _files(tmp)
    out = tmp / "out"
    proc = start(tmp, *data, f"trainer.max_steps={STEPS}", f"output={out}", "data.num_workers=2")
    last = out / "checkpoints" / "last.ckpt"
    wait_for(last, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    killed_at = step_of(last)  # loads: the kill left no half-written checkpoint
    leftovers = sorted(p.name for p in out.rglob("*") if p.is_file() and p.name != "last.ckpt")
    torch.set_num_threads(1)
    resumed = run_inprocess(tmp, *data, f"trainer.max_steps={STEPS}", f"output={out}", "resume=true",
                            "data.num_workers=2")
    reference = run_inprocess(tmp, *data, f"trainer.max_steps={STEPS}", f"output={tmp / 'ref'}")
    return {"killed_at": killed_at, "rc": proc.returncode, "out": out, "resumed": Path(resumed),
            "reference": Path(reference), "leftovers": leftovers}


def test_sigkill_leaves_a_loadable_checkpoint_mid_way(killed_and_resumed):
    r = killed_and_resumed
    assert r["rc"] == -signal.SIGKILL and 0 < r["killed_at"] < STEPS and r["killed_at"] % 3 == 0
    assert r["killed_at"] % 5, "the kill was meant to come after a mid-epoch checkpoint"
    # no second checkpoint beside last.ckpt (a kill during a save may leave only a hidden .last.*.tmp.ckpt)
    assert not [n for n in r["leftovers"] if n.endswith(".ckpt") and not n.startswith(".")], r["leftovers"]


def test_resume_after_sigkill_ends_at_max_steps(killed_and_resumed):
    r = killed_and_resumed
    assert step_of(r["out"] / "checkpoints" / "last.ckpt") == STEPS
    net, meta = load_network(r["resumed"])
    assert all(torch.isfinite(p).all() for p in net.state_dict().values())


def test_resumed_weights_equal_an_uninterrupted_run(killed_and_resumed):
    r = killed_and_resumed
    got, _ = load_network(r["resumed"])
    want, _ = load_network(r["reference"])
    torch.testing.assert_close(got.state_dict(), want.state_dict(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("stop", [7, 10], ids=["mid-epoch", "epoch-end"])
def test_a_run_stopped_at_any_step_resumes_to_the_uninterrupted_weights(tmp_path, stop):
    """Stopped at step 7 (part way through the second 5-step epoch) or 10 (its end), then resumed
    to step 12: the same weights as 12 steps in one go."""
    data = _files(tmp_path)
    run_inprocess(tmp_path, *data, f"trainer.max_steps={stop}", f"output={tmp_path / 'a'}")
    resumed = run_inprocess(tmp_path, *data, "trainer.max_steps=12", f"output={tmp_path / 'a'}",
                            "resume=true")
    reference = run_inprocess(tmp_path, *data, "trainer.max_steps=12", f"output={tmp_path / 'b'}")
    assert step_of(tmp_path / "a" / "checkpoints" / "last.ckpt") == 12
    torch.testing.assert_close(load_network(resumed)[0].state_dict(), load_network(reference)[0].state_dict(),
                               atol=1e-5, rtol=0)


DDP = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"]


def test_sigkill_under_ddp_then_resume_gives_the_uninterrupted_weights(tmp_path):
    """Two DDP processes on the CPU (gloo), both killed with SIGKILL after a mid-epoch checkpoint
    (each rank trains on its own half of every epoch: 3 steps of 2 crops; checkpoints at steps 4
    and 8, both part way through an epoch), then resumed under DDP: the weights of an uninterrupted
    DDP run."""
    data = [*_files(tmp_path), "data.epoch_size=14", "ckpt_every=4"]
    steps = 11
    out = tmp_path / "out"
    proc = start(tmp_path, *data, f"trainer.max_steps={steps}", f"output={out}", *DDP, new_session=True)
    last = out / "checkpoints" / "last.ckpt"
    wait_for(last, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the launcher and the rank it started
    proc.wait(timeout=60)
    killed_at = step_of(last)
    assert 0 < killed_at < steps and killed_at % 3, killed_at  # 3 steps an epoch: part way through one
    runs = (("resumed", [f"output={out}", "resume=true"]), ("reference", [f"output={tmp_path / 'ref'}"]))
    for name, extra in runs:
        p = start(tmp_path, *data, f"trainer.max_steps={steps}", *extra, *DDP)
        _, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, f"{name}: {stderr[-2000:]}"
    got = load_network(next(out.glob("*.safetensors")))[0].state_dict()
    want = load_network(next((tmp_path / "ref").glob("*.safetensors")))[0].state_dict()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_save_a_checkpoint_and_exit(tmp_path, sig, code):
    data = _files(tmp_path)
    out = tmp_path / "out"
    proc = start(tmp_path, *data, f"trainer.max_steps={STEPS * 50}", f"output={out}")
    wait_for(out / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code and "Traceback" not in stderr, stderr
    line = next(x for x in stderr.splitlines() if x.startswith("nst: interrupted at step"))
    step = int(line.split("step ")[1].split()[0])
    assert step_of(out / "checkpoints" / "last.ckpt") == step > 0  # saved at the step it stopped
    assert not list(out.glob("*.safetensors"))  # no export of an unfinished model


def test_sigterm_under_ddp_saves_the_checkpoint_and_every_rank_exits_143(tmp_path):
    """Two DDP processes on the CPU (gloo): SIGTERM to the launching process (rank 0), which
    Lightning forwards to rank 1. Both stop at the same step and exit 143, and last.ckpt holds
    that step (Lightning's checkpoint write runs on rank 0 only)."""
    data = _files(tmp_path)
    out = tmp_path / "out"
    proc = start(tmp_path, *data, f"trainer.max_steps={STEPS * 50}", f"output={out}", *DDP)
    wait_for(out / "checkpoints" / "last.ckpt", proc)
    saved = (out / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr
    # both ranks write to the same stderr: a line may follow another rank's unfinished one
    found = sorted(re.findall(r"nst: interrupted at step (\d+) \(rank (\d), exit (\d+)\)", stderr),
                   key=lambda m: m[1])
    assert [(rank, code) for _, rank, code in found] == [("0", "143"), ("1", "143")], stderr[-3000:]
    steps = {int(step) for step, _, _ in found}
    assert len(steps) == 1  # both ranks stopped at the same step
    last = out / "checkpoints" / "last.ckpt"
    assert step_of(last) == steps.pop() and last.stat().st_mtime_ns > saved
    assert not [p for p in last.parent.iterdir() if p.name.startswith(".")]  # no second writer's temporary


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """The loss turns NaN at step 5 (after the checkpoint at step 3): one NSTError naming step 5,
    last.ckpt stays the good one of step 3, and no model is exported."""
    from nst.training.module import ImageToImageModule

    real = ImageToImageModule.training_step

    def poisoned(self, batch, batch_idx):
        loss = real(self, batch, batch_idx)
        if self.trainer.global_step == 4:  # the 5th step
            self.last_loss = torch.tensor(math.nan)
            return loss * math.nan
        return loss

    monkeypatch.setattr(ImageToImageModule, "training_step", poisoned)
    out = tmp_path / "out"
    with pytest.raises(NSTError, match="step 5") as e:
        run_inprocess(tmp_path, *_files(tmp_path), "trainer.max_steps=9", f"output={out}")
    assert "\n" not in str(e.value) and "last.ckpt" in str(e.value)
    ckpt = out / "checkpoints" / "last.ckpt"
    assert step_of(ckpt) == 3
    net, _ = load_lightning_checkpoint(ckpt)
    assert all(torch.isfinite(p).all() for p in net.state_dict().values())
    assert not list(out.glob("*.safetensors"))


KILLED_EXPORT = """
import sys, time
from pathlib import Path
import torch
from nst.models.modelfile import save_model
from nst.networks.transformer import TransformerNet

real = Path.write_bytes
def slow(self, data):  # half the file reaches the disk, then the process is killed
    real(self, bytes(data)[: len(data) // 2])
    print("writing", flush=True)
    time.sleep(60)
Path.write_bytes = slow
save_model(sys.argv[1], TransformerNet(channels=8, num_residual=1), {"style": "x.jpg"})
"""


def test_sigkill_during_export_leaves_no_partial_model(tmp_path):
    target = tmp_path / "model.safetensors"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_EXPORT, str(target)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert not target.exists()  # only a hidden temporary is left, which no loader takes for the model
    from nst.models.modelfile import load_any

    assert [p.name.startswith(".") and ".tmp" in p.name for p in tmp_path.iterdir()] == [True]
    with pytest.raises(NSTError, match="no such model file"):
        load_any(target)
