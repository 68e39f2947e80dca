"""The measurement logic of scripts/bench/finetune_speed.py and scripts/repro/ (strength_table,
flicker_table, loss_grid, quality_curve)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from nst.io.image import save_image
from nst.models.modelfile import save_model
from nst.networks.transformer import TransformerNet

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
FOLDER = {"finetune_speed": "bench"}  # the others reproduce a results page: scripts/repro


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / FOLDER.get(name, "repro") / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(folder: Path, values: list[float]) -> Path:
    (folder / "csv" / "version_0").mkdir(parents=True)
    rows = ["step,train/loss"] + [f"{i},{v}" for i, v in enumerate(values)]
    (folder / "csv" / "version_0" / "metrics.csv").write_text("\n".join(rows) + "\n")
    log = [f"[2026-12-01 10:00:{i // 10:02d},000][nst][INFO] - step {i}/100 (x %), loss 1" for i in (10, 100)]
    folder.with_suffix(".log").write_text("\n".join(log) + "\n")
    return folder


def test_finetune_speed_finds_the_first_step_at_the_scratch_runs_final_loss(tmp_path, capsys):
    scratch = _run(tmp_path / "a", [1.0] * 90 + [0.5] * 10)  # ends at 0.5
    finetune = _run(tmp_path / "b", [0.9] * 40 + [0.3] * 60)
    assert _script("finetune_speed").main(["--scratch", str(scratch), "--finetune", str(finetune),
                                           "--window", "10"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scratch_final_loss"] == 0.5
    # logged steps 0..99; the 10-step mean at step 46 is (3*0.9 + 7*0.3)/10 = 0.48 <= 0.5, at 45 it is
    # 0.54: the 47th step (counted from 1)
    assert report["finetune_reaches_at_step"] == 47


def test_finetune_speed_says_never_when_the_loss_is_not_reached(tmp_path, capsys):
    scratch = _run(tmp_path / "a", [0.1] * 100)
    finetune = _run(tmp_path / "b", [0.9] * 100)
    _script("finetune_speed").main(["--scratch", str(scratch), "--finetune", str(finetune), "--window", "10"])
    assert json.loads(capsys.readouterr().out)["finetune_reaches_at_step"] is None


def test_strength_table_scores_every_strength_and_writes_a_strip(tmp_path, capsys):
    torch.manual_seed(0)
    net = TransformerNet(8, 1, output="residual", strength_input=True)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape))
    stripes = (torch.arange(48).view(1, 1, 1, 48) % 8 < 4).float().expand(1, 3, 48, 48)
    save_image(stripes, tmp_path / "waves.png")
    card = {"style": [str(tmp_path / "waves.png")], "style_size": 48,
            "vgg": {"arch": "vgg16", "weights": "random"},
            "loss": {"content_layers": {"relu2_2": 1.0}, "style_layers": {"relu1_2": 1.0, "relu2_2": 1.0},
                     "content_weight": 1.0, "style_weight": 1.0, "tv_weight": 0.0, "normalize": True}}
    model = save_model(tmp_path / "strength.safetensors", net.eval(), card)
    fixed = save_model(tmp_path / "fixed.safetensors", TransformerNet(8, 1).eval(), card)
    save_image(torch.rand(1, 3, 40, 48), tmp_path / "photos" / "a.png")
    out = tmp_path / "out"
    assert _script("strength_table").main(["--model", str(model), "--fixed", f"0.5={fixed}", "--strengths",
                                           "0,0.5,1", "--photos", str(tmp_path / "photos"), "--size", "40",
                                           "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["model"], r["strength"]) for r in rows] == [
        ("conditioned", 0.0), ("conditioned", 0.5), ("fixed style weight 0.5", 0.5), ("conditioned", 1.0)]
    assert all(r["content"] >= 0 and r["style"] > 0 and 0 < r["psnr"] < 100 for r in rows)
    assert rows[0]["style"] != rows[-1]["style"]  # the strength input changed the result
    assert (out / "strip.jpg").is_file()


def _stylenet(tmp_path: Path, name: str, seed: int, tv_weight: float = 0.0, style_weight: float = 1.0,
              layers: dict | None = None):
    torch.manual_seed(seed)
    stripes = (torch.arange(48).view(1, 1, 1, 48) % 8 < 4).float().expand(1, 3, 48, 48)
    save_image(stripes, tmp_path / "waves.png")
    card = {"style": [str(tmp_path / "waves.png")], "style_size": 48,
            "vgg": {"arch": "vgg16", "weights": "random"},
            "loss": {"content_layers": {"relu2_2": 1.0},
                     "style_layers": layers or {"relu1_2": 1.0, "relu2_2": 1.0},
                     "content_weight": 1.0, "style_weight": style_weight, "tv_weight": tv_weight,
                     "normalize": True}}
    return save_model(tmp_path / f"{name}.safetensors", TransformerNet(8, 1).eval(), card)


def test_flicker_table_gives_each_model_its_ratios_to_the_first_and_leaves_out_small_photos(tmp_path):
    a, b = _stylenet(tmp_path, "a", 0), _stylenet(tmp_path, "b", 1, tv_weight=5.0)  # TV may differ
    (tmp_path / "photos").mkdir()
    save_image(torch.rand(1, 3, 40, 80), tmp_path / "photos" / "wide.png")
    save_image(torch.rand(1, 3, 40, 30), tmp_path / "photos" / "narrow.png")  # no room for the pan
    out = tmp_path / "out"
    assert _script("flicker_table").main([str(a), str(b), "--photos", str(tmp_path / "photos"),
                                          "--out", str(out), "--frames", "4", "--width", "32",
                                          "--height", "24", "--threads", "1"]) == 0
    report = json.loads((out / "results.json").read_text())
    assert [Path(p).name for p in report["photos"]] == ["wide.png"]
    first, second = report["rows"]
    assert first["warping_error"] == {"geomean": 1.0, "min": 1.0, "max": 1.0}
    raw = report["per_photo"][report["photos"][0]]
    assert abs(second["style"]["geomean"] - raw[1]["style"] / raw[0]["style"]) < 1e-9
    assert second["warping_error"]["geomean"] != 1.0  # two different networks
    assert "| " + str(b.resolve()) + " |" in (out / "results.md").read_text()


def test_flicker_table_scores_the_style_term_without_the_models_own_style_weight(tmp_path):
    a, b = _stylenet(tmp_path, "a", 0), _stylenet(tmp_path, "b", 0, style_weight=2.0)  # the same network
    save_image(torch.rand(1, 3, 40, 80), tmp_path / "p.png")
    assert _script("flicker_table").main([str(a), str(b), "--photos", str(tmp_path / "p.png"), "--out",
                                          str(tmp_path / "out"), "--frames", "4", "--width", "32",
                                          "--height", "24", "--threads", "1"]) == 0
    second = json.loads((tmp_path / "out" / "results.json").read_text())["rows"][1]
    assert abs(second["style"]["geomean"] - 1.0) < 1e-6 and abs(second["warping_error"]["geomean"] - 1) < 1e-6


def test_flicker_table_refuses_models_scored_by_different_style_losses(tmp_path, capsys):
    a = _stylenet(tmp_path, "a", 0)
    b = _stylenet(tmp_path, "b", 1, layers={"relu1_2": 1.0})
    save_image(torch.rand(1, 3, 40, 80), tmp_path / "p.png")
    assert _script("flicker_table").main([str(a), str(b), "--photos", str(tmp_path / "p.png"),
                                          "--out", str(tmp_path / "out")]) == 2
    assert "not the same measure" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_loss_grid_runs_each_cell_once_and_resumes(tmp_path, image, monkeypatch):
    grid = _script("loss_grid")
    photo, style = save_image(image, tmp_path / "p.png"), save_image(image.flip(-1), tmp_path / "s.png")
    args = [str(tmp_path / "out"), "--styles", str(style), "--photos", str(photo), "--sweep",
            "style_weight=1,3", "--weights", "random", "--size", "40", "--style-size", "40",
            "--sides", "40", "--iterations", "2"]
    grid.main(args)
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["value"] for r in report["runs"]] == [1.0, 3.0]
    assert all(r["terms"]["loss"] > 0 for r in report["runs"])
    assert (tmp_path / "out" / "grid.jpg").is_file()
    assert "style_weight=3" in (tmp_path / "out" / "results.md").read_text()
    monkeypatch.setattr(grid, "one_run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran again")))
    grid.main(args)  # every cell is on disk: nothing runs again


def test_quality_curve_reads_each_checkpoints_step_and_training_time(tmp_path, monkeypatch):
    curve = _script("quality_curve")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for step, seconds in ((100, 60.0), (200, 150.0)):
        torch.save({"global_step": step, "train_seconds": seconds},
                   run / "checkpoints" / f"step_{step:06d}.ckpt")
    scored = {100: 30.0, 200: None}  # the second beats every Gatys snapshot run

    def score(ckpt, out, args):
        step = int(ckpt.stem.split("_")[1])
        return {"match_mean_loss": scored[step], "match_median": scored[step],
                "network": {"loss": 1.0, "content": 0.5, "style": 0.5}}

    monkeypatch.setattr(curve, "score", score)
    curve.main([str(tmp_path / "out"), str(run), "--input", "x", "--iterations", "25", "50"])
    rows = json.loads((tmp_path / "out" / "curve.json").read_text())
    assert [(r["step"], r["minutes"], r["matches"]) for r in rows] == [(100, 1.0, 30.0), (200, 2.5, None)]
    assert "| run | 200 | 2.5 | > 50 |" in (tmp_path / "out" / "curve.md").read_text()


def test_quality_curve_passes_overrides_given_after_the_iterations_to_compare(tmp_path, monkeypatch):
    curve = _script("quality_curve")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"global_step": 100, "train_seconds": 60.0}, run / "checkpoints" / "step_000100.ckpt")
    seen = {}

    def score(ckpt, out, args):
        seen.update(iterations=args.iterations, overrides=args.overrides)
        return {"match_mean_loss": 30.0, "match_median": 30.0,
                "network": {"loss": 1.0, "content": 0.5, "style": 0.5}}

    monkeypatch.setattr(curve, "score", score)
    curve.main([str(tmp_path / "out"), str(run), "--input", "x", "--iterations", "25", "50", "threads=1"])
    assert seen == {"iterations": [25, 50], "overrides": ["threads=1"]}
