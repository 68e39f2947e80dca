"""``nst mode=compare``: a tiny exported model against a few Gatys steps (random VGG, 32 px)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import compose_config  # noqa: E402

import nst.cli
from nst.assets import ROOT as ASSETS
from nst.cli.compare import counts
from nst.errors import NSTError
from nst.evaluation.compare import (
    average,
    best_curve,
    iterations_to_match,
    loss_settings,
    loss_terms,
    model_loss,
    resolve_styles,
)
from nst.io.files import file_digest
from nst.io.image import load_image, save_image
from nst.models.modelfile import save_model
from nst.networks.transformer import TransformerNet

# What nst.cli.train stores, with shallow layers so that a step costs little on 2 cores.
META = {"style": ["starry_night.jpg"], "style_blend": [1.0], "style_size": 32,
        "loss": {"content_layers": {"relu2_2": 1.0}, "style_layers": {"relu1_2": 1.0, "relu2_2": 1.0},
                 "content_weight": 1.0, "style_weight": 10.0, "tv_weight": 1.0, "normalize": True},
        "vgg": {"arch": "vgg16", "weights": "random"}, "steps": 3}


@pytest.fixture
def model(tmp_path):
    torch.manual_seed(0)
    return save_model(tmp_path / "tiny.safetensors", TransformerNet(channels=8, num_residual=1), META)


@pytest.fixture
def photos(image, tmp_path):
    folder = tmp_path / "photos"
    save_image(image, folder / "a.png")
    save_image(image.flip(-1).transpose(-1, -2), folder / "b.png")
    return folder


def run_compare(tmp_path, model, photos, *overrides):
    cfg = compose_config(["mode=compare", f"checkpoint={model}", f"input={photos}",
                          f"output={tmp_path / 'out'}", "snapshots=[2,4]", "size=32", "repeats=1",
                          "picture_height=32", "logger=none", f"paths.output_dir={tmp_path / 'run'}",
                          *overrides])
    return nst.cli.run(cfg)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One comparison for the tests that only read its files (each run costs seconds)."""
    tmp = tmp_path_factory.mktemp("compare")
    torch.manual_seed(0)
    model = save_model(tmp / "tiny.safetensors", TransformerNet(channels=8, num_residual=1), META)
    y = torch.linspace(0, 1, 40).view(1, 1, 40, 1)
    x = torch.linspace(0, 1, 36).view(1, 1, 1, 36)
    image = torch.cat([y * x, (1 - y) * x, 0.5 + 0.4 * torch.sin(6 * y + 4 * x)], dim=1)
    save_image(image, tmp / "photos" / "a.png")
    save_image(image.flip(-1).transpose(-1, -2), tmp / "photos" / "b.png")
    run_compare(tmp, model, tmp / "photos")
    return tmp


@pytest.fixture
def report(shared):
    return json.loads((shared / "out" / "results.json").read_text())


def test_results_json_has_every_number_per_photo_and_on_average(report):
    assert [r["content"].rsplit("/", 1)[-1] for r in report["images"]] == ["a.png", "b.png"]
    for entry in [*report["images"], report["average"]]:
        assert set(entry["gatys"]) == {"2", "4"}
        for terms in [entry["network"], *entry["gatys"].values()]:
            assert set(terms) == {"loss", "content", "style", "tv", "seconds"}
            assert all(math.isfinite(v) and v >= 0 for v in terms.values())


def test_results_json_records_the_settings_the_model_was_trained_with(report):
    s = report["settings"]
    assert (s["vgg"], s["weights"], s["iterations"], s["size"]) == ("vgg16", "random", [2, 4], 32)
    assert s["style"][0].endswith("styles/starry_night.jpg")  # the bundled asset named in the metadata
    assert report["loss"]["style_layers"] == META["loss"]["style_layers"]


def test_gatys_loss_does_not_rise_with_more_iterations(report):
    for r in report["images"]:
        assert r["gatys"]["4"]["loss"] <= r["gatys"]["2"]["loss"] * 1.001


def test_writes_markdown_and_one_picture_per_photo(shared):
    md = (shared / "out" / "results.md").read_text()
    assert "| a.png | Gatys 4 it |" in md and "| **average** | network |" in md
    pictures = sorted(p.name for p in (shared / "out").glob("*_compare.jpg"))
    assert pictures == ["a_compare.jpg", "b_compare.jpg"]
    # content | Gatys 2 | Gatys 4 | network: four tiles side by side
    assert load_image(shared / "out" / "a_compare.jpg").shape[-1] > 3 * 32


def test_limit_takes_the_first_photos(tmp_path, model, photos):
    report = run_compare(tmp_path, model, photos, "limit=1", "snapshots=[1]")
    assert len(report["images"]) == 1


def test_missing_style_is_one_clear_error(tmp_path):
    with pytest.raises(NSTError, match="style image 'nowhere.jpg' .* pass style=PATH"):
        resolve_styles({"style": ["nowhere.jpg"]}, tmp_path / "m.safetensors")


def test_style_override_and_paths_beside_the_model(tmp_path, image):
    beside = save_image(image, tmp_path / "mine.png")
    assert resolve_styles({"style": ["mine.png"]}, tmp_path / "m.safetensors") == [beside]
    with pytest.raises(NSTError, match="style=.*no such file"):
        resolve_styles(META, tmp_path / "m.safetensors", [str(tmp_path / "absent.png")])


def test_a_copy_of_the_style_with_another_digest_is_refused(tmp_path, image):
    trained = save_image(image, tmp_path / "mine.png")
    meta = {"style": ["mine.png"], "style_digest": [file_digest(trained)]}
    assert resolve_styles(meta, tmp_path / "m.safetensors") == [trained]
    save_image(image.flip(-1), trained)  # same name, other pixels: other Gram targets
    with pytest.raises(NSTError, match="mine.png.*not the file the model trained on"):
        resolve_styles(meta, tmp_path / "m.safetensors")


def test_loss_settings_from_metadata():
    s = loss_settings(META)
    assert (s["arch"], s["weights"], s["style_weight"]) == ("vgg16", "random", 10.0)
    assert loss_settings({"style": ["x.jpg"]}) is None


@pytest.mark.parametrize("strength", [None, {"conditioned": True, "range": [0.0, 1.0]}])
def test_a_photo_anchor_is_left_out_of_the_scores(image, strength):
    anchored = {**META, "loss": {**META["loss"], "pixel_weight": 50.0}}
    if strength:
        anchored["strength"] = strength  # scored at s = 1, where it weighed 0 anyway
    settings = loss_settings(anchored)
    assert "pixel_weight" not in settings
    loss = model_loss(settings)  # META's weights are random
    loss.set_style([image])
    scores = loss_terms(loss, image, loss.content_targets(image))  # what raised "needs the target image"
    assert set(scores) >= {"loss", "content", "style", "tv"}


def test_the_best_curve_never_rises():
    # history[k] is the loss after k iterations; the final value comes after all of them
    assert best_curve([9.0, 5.0, 7.0, 3.0], 4.0) == [9.0, 5.0, 5.0, 3.0, 3.0]


def test_iterations_to_match_interpolates_between_iterations():
    curve = [9.0, 5.0, 3.0, 1.0]
    assert iterations_to_match(curve, 4.0) == pytest.approx(1.5)
    assert iterations_to_match(curve, 5.0) == pytest.approx(1.0)
    assert iterations_to_match(curve, 1.0) == pytest.approx(3.0)
    assert iterations_to_match(curve, 0.5) is None
    assert iterations_to_match(curve, 10.0) == 0.0


def test_the_average_match_is_read_on_the_mean_curve():
    def row(net, curve, match):
        return {"network": {"loss": net}, "gatys": {"1": {"loss": curve[-1]}}, "curve": curve,
                "match_iterations": match, "match_seconds": match}
    rows = [row(4.0, [8.0, 4.0, 2.0], 1.0), row(2.0, [4.0, 2.0, 0.0], 1.0), row(9.0, [9.5, 9.4, 9.3], None)]
    avg = average(rows[:2])
    # mean network loss 3.0 on the mean curve [6, 3, 1]: exactly 1 iteration
    assert avg["match_mean_loss"] == pytest.approx(1.0)
    assert avg["match_median"] == pytest.approx(1.0)
    # a photo Gatys never matched ranks above the others: the median of (1, 1, never) is 1
    assert average(rows)["match_median"] == pytest.approx(1.0)
    assert average(rows)["match_iterations"] is None


@pytest.mark.parametrize("bad", [[], [0], ["x"], [True]])
def test_bad_snapshot_counts_are_refused(bad):
    with pytest.raises(NSTError, match="snapshots="):
        counts(bad)


def test_a_multi_style_model_is_compared_on_the_chosen_style(tmp_path, photos):
    torch.manual_seed(0)
    names = ["starry_night.jpg", "udnie.jpg"]  # both bundled: the loss finds their images
    digests = [file_digest(ASSETS / "styles" / n) for n in names]  # each style checked against its own
    net = TransformerNet(channels=8, num_residual=1, num_styles=2)
    model = save_model(tmp_path / "multi.safetensors", net, {**META, "style": names, "styles": names,
                                                             "style_digest": digests,
                                                             "style_blend": [0.5, 0.5]})
    report = run_compare(tmp_path, model, photos, "style=udnie", "snapshots=[1]", "limit=1")
    assert [p.rsplit("/", 1)[-1] for p in report["settings"]["style"]] == ["udnie.jpg"]
    with pytest.raises(NSTError, match="this model has 2 styles"):
        run_compare(tmp_path, model, photos, "style=monet", "snapshots=[1]", "limit=1")
    # a style whose image is neither beside the model nor bundled: its path picks it and gives the image
    elsewhere = save_image(torch.rand(1, 3, 40, 40), tmp_path / "elsewhere" / "udnie.jpg")
    report = run_compare(tmp_path, model, photos, f"style={elsewhere}", "snapshots=[1]", "limit=1")
    assert report["settings"]["style"] == [str(elsewhere)]


def test_a_second_network_reuses_the_gatys_runs(tmp_path, model, photos, monkeypatch):
    """The Gatys runs depend on the photo and the loss, not on the network: a second comparison of
    another network on the same photos runs no optimizer and reads the same curves."""
    import nst.evaluation.compare as compare

    first = run_compare(tmp_path / "a", model, photos)
    torch.manual_seed(1)
    other = save_model(tmp_path / "other.safetensors", TransformerNet(channels=8, num_residual=1), META)
    calls, original = [], compare.optimize
    monkeypatch.setattr(compare, "optimize", lambda *a, **k: calls.append(1) or original(*a, **k))
    second = run_compare(tmp_path / "b", other, photos)
    assert calls == []
    for a, b in zip(first["images"], second["images"]):
        assert a["gatys"] == b["gatys"] and a["curve"] == b["curve"]
    assert first["average"]["network"] != second["average"]["network"]
    run_compare(tmp_path / "c", other, photos, "cache=false")
    assert len(calls) == 2  # one run per photo
