"""The command line as a user meets it: help, composed config, one-line errors, sweeps."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nst.cli import MODES

pytestmark = pytest.mark.e2e


def nst(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nst", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_help_lists_modes_and_groups():
    out = nst("--help").stdout
    for word in ("mode:", "train", "gatys", "stylize", "vgg:", "loss:", "trainer:", "gpu", "logger:"):
        assert word in out


def test_help_after_overrides_shows_their_config_and_a_bad_one_is_one_line():
    out = nst("mode=stylize", "--help").stdout
    assert "== Modes and other config groups" in out and "backend: auto" in out and "tile_size:" in out
    res = nst("mode=stylise", "--help")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "did you mean 'stylize'" in res.stderr


def test_cfg_job_prints_the_composed_config(tmp_path):
    res = nst("mode=gatys", "--cfg", "job")  # exactly as the issue writes it; --cfg creates no run folder
    assert res.returncode == 0, res.stderr
    assert "mode: gatys" in res.stdout and "style_layers" in res.stdout


def test_unknown_key_is_rejected(tmp_path):
    res = nst("mode=train", "no_such_key=1", f"hydra.run.dir={tmp_path}")
    assert res.returncode != 0 and "no_such_key" in res.stderr


def test_user_error_is_one_line_without_traceback(tmp_path):
    missing = tmp_path / "missing.jpg"
    res = nst("mode=gatys", f"content={missing}", f"style={missing}", "vgg.weights=random", "logger=none",
              f"hydra.run.dir={tmp_path}")
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("nst: error:")]
    assert len(lines) == 1 and "missing.jpg" in lines[0]


def test_unknown_mode_is_rejected_by_the_config_group(tmp_path):
    res = nst("mode=dance", f"hydra.run.dir={tmp_path}")
    assert res.returncode != 0 and "dance" in res.stderr


def test_multirun_sweeps(tmp_path):
    res = nst("-m", "mode=weights", "vgg.weights=random", "seed=1,2", f"hydra.sweep.dir={tmp_path}")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("weights ready") == 2


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_has_a_config(mode):
    from pathlib import Path

    from nst.cli import config_dir

    assert (Path(config_dir()) / "mode" / f"{mode}.yaml").is_file()
