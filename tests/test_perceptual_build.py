"""nst.perceptual.build: the one loss builder (CLI, compare and the benchmark use it)."""

from __future__ import annotations

import logging

import yaml
from conftest import compose_config  # noqa: E402

from nst.cli import config_dir
from nst.perceptual.build import build_loss, loss_layers

SPEC = {"_target_": "ignored", "content_layers": {"relu2_2": 1.0}, "style_layers": ["relu1_2", "relu3_3"],
        "style_weight": 3.0, "tv_weight": 0.5, "tuned_for": "vgg16"}


def test_the_vgg_is_cut_after_the_deepest_layer_the_loss_reads():
    loss = build_loss(SPEC, "vgg16", "random")
    assert loss_layers(SPEC) == ["relu2_2", "relu1_2", "relu3_3"]
    assert loss.vgg.layers == ["relu2_2", "relu1_2", "relu3_3"] and loss.style_weight == 3.0
    assert len(loss.vgg.features) == 16  # conv1_1 .. relu3_3


def test_another_vgg_than_the_one_tuned_for_is_allowed_and_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="nst"):
        build_loss(SPEC, "vgg19", "random")
    assert "tuned with vgg16; it runs on vgg19" in caplog.text


def test_every_loss_config_names_the_vgg_it_was_tuned_for():
    from pathlib import Path
    for path in sorted((Path(config_dir()) / "loss").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc.get("_target_", "").endswith("PixelLoss"):  # no VGG: nothing to be tuned for
            assert doc.get("tuned_for") is None, path.name
            continue
        assert doc.get("tuned_for") in ("vgg16", "vgg19"), path.name


def test_the_cli_builds_its_vgg_through_the_vgg_groups_target(monkeypatch):

    import nst.perceptual.vgg
    from nst.cli.build import config_loss

    calls = []
    real = nst.perceptual.vgg.load_vgg
    monkeypatch.setattr(nst.perceptual.vgg, "load_vgg", lambda **kw: calls.append(kw) or real(**kw))
    cfg = compose_config(["mode=train", "vgg.weights=random", "paths.output_dir=/tmp/x"])
    loss = config_loss(cfg)
    assert calls and calls[0]["layers"] == loss_layers(cfg.loss) and calls[0]["weights"] == "random"
    assert loss.vgg.layers == loss_layers(cfg.loss)
