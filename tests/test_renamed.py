"""Renamed config keys (nst/cli/renamed.py): the old spelling works for a release, with a warning."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import compose_config
from omegaconf import OmegaConf

from nst.cli import config_dir
from nst.cli import renamed as renamed_module
from nst.cli.argv import check
from nst.cli.renamed import ALIASES, migrate, rewrite


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    monkeypatch.setattr(renamed_module, "_warned", set())


def test_an_old_key_on_the_command_line_becomes_the_new_key(capsys):
    assert rewrite(["mode=train", "data.crop=64", "data.resize=96", "samples.max_side=80"]) == [
        "mode=train", "data.crop_size=64", "data.short_side=96", "samples.size=80"]
    assert "data.crop is now data.crop_size" in capsys.readouterr().err


def test_the_rewritten_overrides_pass_the_check_and_compose_with_their_values():
    overrides = rewrite(["data.crop=64", "data.resize=96", "samples.max_side=80"])
    check(overrides, config_dir())  # no "unknown key"
    cfg = compose_config(overrides)
    assert (cfg.data.crop_size, cfg.data.short_side, cfg.samples.size) == (64, 96, 80)


def test_each_old_key_warns_once(capsys):
    rewrite(["data.crop=64"])
    rewrite(["data.crop=32"])
    assert capsys.readouterr().err.count("data.crop is now") == 1


def test_a_mode_specific_rename_leaves_other_modes_alone():
    assert rewrite(["mode=compare", "iterations=[1,2]"]) == ["mode=compare", "snapshots=[1,2]"]
    assert rewrite(["mode=gatys", "iterations=[1,2]"]) == ["mode=gatys", "iterations=[1,2]"]


def test_an_old_key_in_a_config_file_moves_to_the_new_key(capsys):
    cfg = compose_config(["debug=tiny"])
    OmegaConf.set_struct(cfg, False)
    cfg.data.crop = 40  # as an experiment file of the user's own would set it
    migrate(cfg)
    assert cfg.data.crop_size == 40 and "crop" not in cfg.data
    assert "data.crop is now data.crop_size" in capsys.readouterr().err


def test_every_new_key_exists_in_the_configs():
    cfgs = {"compare": compose_config(["mode=compare"]), None: compose_config([])}
    for old, (new, modes) in ALIASES.items():
        cfg = cfgs["compare" if modes else None]
        assert OmegaConf.select(cfg, new, default="<absent>") != "<absent>", new
        assert OmegaConf.select(cfg, old, default="<absent>") == "<absent>", old


@pytest.mark.e2e
def test_the_command_line_warns_and_runs_with_an_old_key(tmp_path):
    res = subprocess.run([sys.executable, "-m", "nst", "mode=train", "samples.max_side=80", "--cfg", "job"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "nst: warning: samples.max_side is now samples.size" in res.stderr
    assert OmegaConf.create(res.stdout).samples.size == 80
