"""Bad inputs through every mode's command line: each case in the generated corpus
(tests/corpus.py) either works or ends in one ``NSTError`` line naming the file, with no output left
behind. Most cases run in-process through ``nst.cli.run``; a few go through ``python -m nst`` to
prove the exit code, the single ``nst: error:`` line and the absence of a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nst.cli
from nst.errors import NSTError
from nst.io.image import load_image, save_image
from nst.models.modelfile import load_network, save_model
from nst.networks.transformer import TransformerNet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import compose_config  # noqa: E402
from corpus import Case, make_corpus  # noqa: E402

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
GATYS = ["mode=gatys", "vgg.weights=random", "logger=none", "trainer.enable_progress_bar=false", "size=32",
         "iterations=1", "~loss.content_layers", "+loss.content_layers={relu1_2: 1.0}", "~loss.style_layers",
         "+loss.style_layers={relu1_1: 1.0}"]
TRAIN = ["mode=train", "vgg.weights=random", "logger=none", "trainer.enable_progress_bar=false",
         "data.crop_size=32",
         "style_size=48", "model.net.channels=8", "model.net.num_residual=1", "data.batch_size=2",
         "data.min_images=2",
         "trainer.max_steps=1", "ckpt_every=1", "samples.images=null", "~loss.style_layers.relu3_3",
         "~loss.style_layers.relu4_3"]
STYLIZE = ["mode=stylize", "logger=none"]
COMPARE = ["mode=compare", "logger=none", "snapshots=[1]", "size=32", "repeats=1", "picture_height=32",
           "vgg.weights=random", "style_size=32"]
META = {"style": ["starry_night.jpg"], "style_blend": [1.0], "style_size": 32,
        "loss": {"content_layers": {"relu1_2": 1.0}, "style_layers": {"relu1_2": 1.0},
                 "content_weight": 1.0, "style_weight": 10.0, "tv_weight": 1.0, "normalize": True},
        "vgg": {"arch": "vgg16", "weights": "random"}}

REFUSED = ["missing", "folder", "empty", "truncated_jpeg", "truncated_png", "text_as_jpeg", "bomb"]
ACCEPTED = ["1x1", "7x5", "png16", "palette", "cmyk_jpeg", "exif_rotated"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: OpenMP's spinning threads only slow a busy 2-core machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Case]:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    """A valid photo, a valid painting, three training photos and a tiny exported model."""
    d = tmp_path_factory.mktemp("good")
    g = torch.Generator().manual_seed(0)
    for i in range(3):
        save_image(torch.rand(1, 3, 40, 48, generator=g), d / "photos" / f"{i}.png")
    torch.manual_seed(0)
    return {"photo": save_image(torch.rand(1, 3, 40, 36, generator=g), d / "photo.png"),
            "style": save_image(torch.rand(1, 3, 48, 48, generator=g), d / "style.png"),
            "photos": d / "photos",
            "model": save_model(d / "tiny.safetensors", TransformerNet(channels=8, num_residual=1), META)}


def cfg_of(tmp_path: Path, *overrides: str):
    return compose_config([f"paths.output_dir={tmp_path / 'run'}", *overrides])


def refused(tmp_path: Path, path: Path, reason: str, *overrides: str) -> str:
    """Run in-process, expect one NSTError line naming ``path`` with ``reason``, and no output written
    (into ``<tmp>/out``: a folder, or ``out/result.png`` for mode=gatys)."""
    out = tmp_path / "out"
    target = out / "result.png" if "mode=gatys" in overrides else out
    with pytest.raises(NSTError) as e:
        nst.cli.run(cfg_of(tmp_path, f"output={target}", *overrides))
    msg = str(e.value)
    assert "\n" not in msg and path.name in msg and reason in msg, msg
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()], list(out.rglob("*"))
    return msg


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# ---- mode=gatys: content= and style= ------------------------------------------------------------

@pytest.mark.parametrize("name", REFUSED)
def test_gatys_bad_content_is_refused(tmp_path, corpus, good, name):
    case = corpus[name]
    refused(tmp_path, case.path, case.reason, *GATYS, f"content={case.path}", f"style={good['style']}")


@pytest.mark.parametrize("name", REFUSED)
def test_gatys_bad_style_is_refused(tmp_path, corpus, good, name):
    case = corpus[name]
    refused(tmp_path, case.path, case.reason, *GATYS, f"content={good['photo']}", f"style={case.path}")


@pytest.mark.parametrize("name", ACCEPTED)
def test_gatys_odd_content_works(tmp_path, corpus, good, name):
    case = corpus[name]
    out = tmp_path / "out.png"
    nst.cli.run(cfg_of(tmp_path, *GATYS, f"content={case.path}", f"style={good['style']}", f"output={out}"))
    expected = load_image(case.path)
    got = load_image(out)
    # size=32 is a max side: the result has the photo's (EXIF-turned) aspect ratio
    assert (got.shape[-2] >= got.shape[-1]) == (expected.shape[-2] >= expected.shape[-1])
    assert torch.isfinite(got).all()


@pytest.mark.parametrize("name", ACCEPTED)  # 1x1 and 7x5 too: a style is resized to the working size
def test_gatys_odd_style_works(tmp_path, corpus, good, name):
    out = tmp_path / "out.png"
    nst.cli.run(cfg_of(tmp_path, *GATYS, f"content={good['photo']}", f"style={corpus[name].path}",
                       f"output={out}"))
    # the result is the content at the working size (size=32), whatever the style's shape
    assert load_image(out).shape == load_image(good["photo"], max_side=32).shape


@pytest.mark.parametrize("name", ["1x1", "7x5"])
def test_gatys_style_too_small_for_the_vgg_is_refused(tmp_path, corpus, good, name):
    path = corpus[name].path
    refused(tmp_path, path, "too small", *GATYS, f"content={good['photo']}", f"style={path}",
            "style_size=3", "~loss.style_layers", "+loss.style_layers={relu3_1: 1.0}")  # 3 px < 4 px


def test_gatys_output_under_a_regular_file_is_refused(tmp_path, good):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    with pytest.raises(NSTError) as e:
        nst.cli.run(cfg_of(tmp_path, *GATYS, f"content={good['photo']}", f"style={good['style']}",
                           f"output={blocker / 'out.png'}"))
    assert "blocker is a file, not a folder" in str(e.value) and "\n" not in str(e.value)
    assert blocker.read_text() == "a file, not a folder"


# ---- mode=train: style= and data.root= ----------------------------------------------------------

@pytest.mark.parametrize("name", REFUSED)
def test_train_bad_style_is_refused_before_training(tmp_path, corpus, good, name):
    case = corpus[name]
    refused(tmp_path, case.path, case.reason, *TRAIN, f"style={case.path}", f"data.root={good['photos']}")


@pytest.mark.parametrize("name", ["1x1", "7x5"])
def test_train_style_smaller_than_the_vgg_takes_is_refused(tmp_path, corpus, good, name):
    """style_size=null keeps the file's size; relu4_3 needs 8 px per side."""
    path = corpus[name].path
    refused(tmp_path, path, "too small", *TRAIN, "style_size=null", "+loss.style_layers.relu4_3=1.0",
            f"style={path}", f"data.root={good['photos']}")


@pytest.mark.parametrize("name", ["missing", "empty", "text_as_jpeg"])
def test_train_bad_data_root_is_refused(tmp_path, corpus, good, name):
    case = corpus[name]
    with pytest.raises(NSTError) as e:
        nst.cli.run(cfg_of(tmp_path, *TRAIN, f"style={good['style']}", f"data.root={case.path}",
                           f"output={tmp_path / 'out'}"))
    assert "\n" not in str(e.value) and case.path.name in str(e.value), str(e.value)
    assert not files_under(tmp_path / "out")


def test_train_skips_the_bad_files_of_a_photo_folder(tmp_path, corpus, good):
    """The whole corpus as training photos: the bad files are skipped, the valid ones train."""
    out = tmp_path / "out"
    root = corpus["empty"].path.parent
    model = nst.cli.run(cfg_of(tmp_path, *TRAIN, f"style={good['style']}", f"data.root={root}",
                               f"output={out}"))
    net, meta = load_network(model)  # a whole model, trained for its one step
    assert meta["steps"] == 1 and net.config["channels"] == 8


def test_train_output_under_a_regular_file_is_refused(tmp_path, good):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(NSTError) as e:
        nst.cli.run(cfg_of(tmp_path, *TRAIN, f"style={good['style']}", f"data.root={good['photos']}",
                           f"output={blocker / 'run'}"))
    assert "blocker" in str(e.value) and "\n" not in str(e.value)


def test_train_output_under_a_regular_file_is_refused_before_training(tmp_path, good, monkeypatch):
    from nst.training.module import ImageToImageModule

    steps = []
    real = ImageToImageModule.training_step
    monkeypatch.setattr(ImageToImageModule, "training_step",
                        lambda self, *a: steps.append(1) or real(self, *a))
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(NSTError, match="blocker"):
        nst.cli.run(cfg_of(tmp_path, *TRAIN, f"style={good['style']}", f"data.root={good['photos']}",
                           f"output={blocker / 'run'}"))
    assert not steps


# ---- mode=stylize: input= and checkpoint= --------------------------------------------------------

@pytest.mark.parametrize("name", REFUSED)
def test_stylize_bad_input_is_refused(tmp_path, corpus, good, name):
    case = corpus[name]
    # input= may be a folder of photos: an empty one has no image files; a missing path is no file or folder
    reason = {"missing": "no such file", "folder": "no image files"}.get(name, case.reason)
    refused(tmp_path, case.path, reason, *STYLIZE, f"checkpoint={good['model']}", f"input={case.path}")


@pytest.mark.parametrize("name", ACCEPTED)
def test_stylize_odd_input_works(tmp_path, corpus, good, name):
    case = corpus[name]
    out = tmp_path / "o.png"
    nst.cli.run(cfg_of(tmp_path, *STYLIZE, f"checkpoint={good['model']}", f"input={case.path}",
                       f"output={out}"))
    assert load_image(out).shape == load_image(case.path).shape


@pytest.mark.parametrize("name", ["missing", "folder", "empty", "text_as_jpeg", "truncated_png"])
def test_stylize_bad_checkpoint_is_refused(tmp_path, corpus, good, name):
    case = corpus[name]
    refused(tmp_path, case.path, "", *STYLIZE, f"checkpoint={case.path}", f"input={good['photo']}")


def _model_files(d: Path, model: Path) -> dict[str, Path]:
    """Broken model files with the suffixes a model has (.safetensors, .ckpt)."""
    d.mkdir(exist_ok=True)
    data = model.read_bytes()
    (d / "folder.safetensors").mkdir(exist_ok=True)
    files = {"missing": d / "missing.safetensors", "folder": d / "folder.safetensors",
             "empty": d / "empty.safetensors", "text": d / "notes.safetensors",
             "truncated": d / "truncated.safetensors", "missing_ckpt": d / "missing.ckpt",
             "empty_ckpt": d / "empty.ckpt", "text_ckpt": d / "notes.ckpt"}
    files["empty"].write_bytes(b"")
    files["empty_ckpt"].write_bytes(b"")
    files["text"].write_text("not a model\n")
    files["text_ckpt"].write_text("not a model\n")
    files["truncated"].write_bytes(data[: len(data) // 2])
    return files


@pytest.mark.parametrize("name", ["missing", "folder", "empty", "text", "truncated", "missing_ckpt",
                                  "empty_ckpt", "text_ckpt"])
def test_stylize_broken_model_file_is_refused(tmp_path, good, name):
    path = _model_files(tmp_path / "models", good["model"])[name]
    reason = {"missing": "no such model file", "folder": "is a folder",
              "empty": "not a safetensors model file", "text": "not a safetensors model file",
              "truncated": "not a safetensors model file",
              "missing_ckpt": "no such model file"}.get(name, "not a readable checkpoint")
    refused(tmp_path, path, reason, *STYLIZE, f"checkpoint={path}", f"input={good['photo']}")


class _Payload:
    """Unpickling this runs os.mkdir(marker): what a crafted checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.fixture
def evil(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"net_config": _Payload(marker)}}, path)
    return path, marker


def test_stylize_crafted_pickle_is_refused_and_not_executed(tmp_path, good, evil):
    path, marker = evil
    refused(tmp_path, path, "refusing to load", *STYLIZE, f"checkpoint={path}", f"input={good['photo']}")
    assert not marker.exists()


def test_stylize_model_whose_architecture_does_not_fit_is_refused(tmp_path, good):
    import json

    from safetensors.torch import save_file
    net = TransformerNet(channels=8, num_residual=1)
    path = tmp_path / "lying.safetensors"
    doc = {"format": "nst-transformer", "format_version": 1, "arch": {**net.config, "channels": 16}}
    save_file(dict(net.state_dict()), str(path),
              metadata={"format": "nst-transformer", "nst": json.dumps(doc)})
    msg = refused(tmp_path, path, "", *STYLIZE, f"checkpoint={path}", f"input={good['photo']}")
    assert "size mismatch" not in msg


def test_stylize_output_under_a_regular_file_is_refused(tmp_path, good):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(NSTError) as e:
        nst.cli.run(cfg_of(tmp_path, *STYLIZE, f"checkpoint={good['model']}", f"input={good['photo']}",
                           f"output={blocker / 'o.png'}"))
    assert "blocker" in str(e.value) and "\n" not in str(e.value)


# ---- mode=compare: input= and checkpoint= --------------------------------------------------------

@pytest.mark.parametrize("name", REFUSED)
def test_compare_bad_input_is_refused(tmp_path, corpus, good, name):
    case = corpus[name]
    reason = {"missing": "no such file", "folder": "no image files"}.get(name, case.reason)
    refused(tmp_path, case.path, reason, *COMPARE, f"checkpoint={good['model']}", f"input={case.path}",
            f"style={good['style']}")


@pytest.mark.parametrize("name", ["missing", "empty", "text_as_jpeg"])
def test_compare_bad_checkpoint_is_refused(tmp_path, corpus, good, name):
    case = corpus[name]
    refused(tmp_path, case.path, "", *COMPARE, f"checkpoint={case.path}", f"input={good['photo']}",
            f"style={good['style']}")


@pytest.mark.parametrize("name", ["1x1", "exif_rotated", "cmyk_jpeg"])
def test_compare_odd_input_works(tmp_path, corpus, good, name):
    out = tmp_path / "out"
    nst.cli.run(cfg_of(tmp_path, *COMPARE, f"checkpoint={good['model']}", f"input={corpus[name].path}",
                       f"style={good['style']}", f"output={out}"))
    report = json.loads((out / "results.json").read_text())
    [row] = report["images"]
    assert row["content"] == str(corpus[name].path) and row["network"]["loss"] > 0
    assert (out / row["picture"]).is_file()


def test_compare_output_under_a_regular_file_is_refused_before_gatys_runs(tmp_path, good, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    monkeypatch.setattr("nst.evaluation.compare.gatys_runs",
                        lambda *a, **k: pytest.fail("Gatys ran before the check"))
    with pytest.raises(NSTError) as e:
        nst.cli.run(cfg_of(tmp_path, *COMPARE, f"checkpoint={good['model']}", f"input={good['photo']}",
                           f"style={good['style']}", f"output={blocker / 'out'}"))
    assert "blocker is a file, not a folder" in str(e.value) and "\n" not in str(e.value)


def test_gatys_crafted_pickle_as_vgg_weights_is_refused_and_not_executed(tmp_path, good):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"features.0.weight": _Payload(marker)}, path)
    overrides = [o for o in GATYS if o != "vgg.weights=random"]
    refused(tmp_path, path, "refusing to load", *overrides, f"vgg.weights={path}", f"content={good['photo']}",
            f"style={good['style']}")
    assert not marker.exists()


def test_gatys_vgg_weights_of_the_wrong_shape_are_refused(tmp_path, good):
    path = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3), "features.0.bias": torch.zeros(8)}, path)
    overrides = [o for o in GATYS if o != "vgg.weights=random"]
    msg = refused(tmp_path, path, "", *overrides, f"vgg.weights={path}", f"content={good['photo']}",
                  f"style={good['style']}")
    assert "size mismatch" not in msg


def test_train_resume_from_a_crafted_pickle_is_refused_and_not_executed(tmp_path, good, evil):
    path, marker = evil
    refused(tmp_path, path, "refusing to load", *TRAIN, f"style={good['style']}",
            f"data.root={good['photos']}", f"resume={path}")
    assert not marker.exists()


def test_compare_crafted_pickle_is_refused(tmp_path, good, evil):
    path, marker = evil
    refused(tmp_path, path, "refusing to load", *COMPARE, f"checkpoint={path}", f"input={good['photo']}",
            f"style={good['style']}")
    assert not marker.exists()


# ---- through the real command line ---------------------------------------------------------------

def nst_cmd(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nst", f"hydra.run.dir={tmp_path / 'hydra'}", *overrides],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


def assert_one_line_error(r: subprocess.CompletedProcess, name: str) -> None:
    errors = [line for line in r.stderr.splitlines() if line.startswith("nst: error:")]
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert len(errors) == 1 and name in errors[0], r.stderr


@pytest.mark.parametrize("name", ["truncated_jpeg", "bomb"])
def test_cli_gatys_bad_content(tmp_path, corpus, good, name):
    out = tmp_path / "out.png"
    r = nst_cmd(tmp_path, *GATYS, f"content={corpus[name].path}", f"style={good['style']}", f"output={out}")
    assert_one_line_error(r, corpus[name].path.name)
    assert not files_under(tmp_path / "out.png")


def test_cli_train_style_too_small(tmp_path, corpus, good):
    path = corpus["7x5"].path
    r = nst_cmd(tmp_path, *TRAIN, "style_size=null", "+loss.style_layers.relu4_3=1.0", f"style={path}",
                f"data.root={good['photos']}", f"output={tmp_path / 'out'}")
    assert_one_line_error(r, path.name)
    assert "too small" in r.stderr and not files_under(tmp_path / "out")


def test_cli_stylize_crafted_pickle(tmp_path, good, evil):
    path, marker = evil
    r = nst_cmd(tmp_path, *STYLIZE, f"checkpoint={path}", f"input={good['photo']}",
                f"output={tmp_path / 'o.png'}")
    assert_one_line_error(r, path.name)
    assert not marker.exists() and not (tmp_path / "o.png").exists()


def test_cli_stylize_output_under_a_regular_file(tmp_path, good):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    r = nst_cmd(tmp_path, *STYLIZE, f"checkpoint={good['model']}", f"input={good['photo']}",
                f"output={blocker / 'o.png'}")
    assert_one_line_error(r, "blocker")


# ---- resources: CUDA out of memory (simulated on the CPU) ----------------------------------------

def _oom(*args, **kwargs):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 15.7 GiB)")


def test_stylize_out_of_gpu_memory_names_the_setting_to_lower(tmp_path, good, monkeypatch):
    monkeypatch.setattr("nst.inference.batch.stylize_files", _oom)
    with pytest.raises(NSTError) as e:
        nst.cli.run(cfg_of(tmp_path, *STYLIZE, f"checkpoint={good['model']}", f"input={good['photo']}",
                           f"output={tmp_path / 'o.png'}"))
    msg = str(e.value)
    assert "out of GPU memory" in msg and "tile_size=" in msg and "\n" not in msg
    assert not (tmp_path / "o.png").exists()


def test_train_out_of_gpu_memory_names_the_setting_to_lower(tmp_path, good, monkeypatch):
    monkeypatch.setattr("nst.training.module.ImageToImageModule.training_step", _oom)
    with pytest.raises(NSTError) as e:
        nst.cli.run(cfg_of(tmp_path, *TRAIN, f"style={good['style']}", f"data.root={good['photos']}",
                           f"output={tmp_path / 'out'}"))
    assert "out of GPU memory" in str(e.value) and "data.batch_size=" in str(e.value)
    assert not list((tmp_path / "out").glob("*.safetensors"))


def test_other_errors_are_not_taken_for_out_of_memory(tmp_path, good, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("a programming error")

    monkeypatch.setattr("nst.inference.batch.stylize_files", boom)
    with pytest.raises(RuntimeError, match="a programming error"):
        nst.cli.run(cfg_of(tmp_path, *STYLIZE, f"checkpoint={good['model']}", f"input={good['photo']}",
                           f"output={tmp_path / 'o.png'}"))


def test_stylize_a_photo_larger_than_tile_size_goes_through_tiles(tmp_path, good, monkeypatch):
    """Memory: a photo over tile_size runs in tiles (the whole-image forward pass never happens) and
    comes out at its own size."""
    pixels = torch.rand(1, 3, 150, 200, generator=torch.Generator().manual_seed(3))
    src = save_image(pixels, tmp_path / "big.png")
    from nst.networks.transformer import TransformerNet as Net

    sides = []
    real = Net.forward
    def forward(self, x, *args, **kwargs):
        sides.append(max(x.shape[-2:]))
        return real(self, x, *args, **kwargs)

    monkeypatch.setattr(Net, "forward", forward)
    out = tmp_path / "o.png"
    nst.cli.run(cfg_of(tmp_path, *STYLIZE, f"checkpoint={good['model']}", f"input={src}", f"output={out}",
                       "tile_size=64", "tile_overlap=16"))
    assert load_image(out).shape == (1, 3, 150, 200)
    assert sides and max(sides) <= 64, sides


# ---- upscale, evaluate, multi-style, video -----------------------------------------------------

@pytest.fixture(scope="module")
def sr_model(tmp_path_factory) -> Path:
    from nst.networks.srnet import SRNet

    torch.manual_seed(0)
    net = SRNet(factor=4, channels=8, num_residual=1)
    card = {"degrade": {"factor": 4, "sigma": 1.0}}
    return save_model(tmp_path_factory.mktemp("sr") / "sr.safetensors", net, card)


@pytest.fixture(scope="module")
def multi_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_model(tmp_path_factory.mktemp("multi") / "multi.safetensors",
                      TransformerNet(channels=8, num_residual=1, num_styles=2),
                      {**META, "styles": ["a.jpg", "b.jpg"], "style": ["a.jpg", "b.jpg"]})


def _input_reason(name: str, case: Case) -> str:
    return {"missing": "no such file", "folder": "no image files"}.get(name, case.reason)


@pytest.mark.parametrize("name", REFUSED)
def test_upscale_bad_input_is_refused(tmp_path, corpus, sr_model, name):
    case = corpus[name]
    refused(tmp_path, case.path, _input_reason(name, case), "mode=upscale", "logger=none",
            f"checkpoint={sr_model}", f"input={case.path}")


@pytest.mark.parametrize("name", ACCEPTED)
def test_upscale_odd_input_works(tmp_path, corpus, sr_model, name):
    case = corpus[name]
    out = tmp_path / "o.png"
    nst.cli.run(cfg_of(tmp_path, "mode=upscale", "logger=none", f"checkpoint={sr_model}",
                       f"input={case.path}", f"output={out}"))
    assert load_image(out).shape[-2:] == tuple(4 * s for s in load_image(case.path).shape[-2:])


@pytest.mark.parametrize("name", REFUSED)
def test_evaluate_bad_input_is_refused(tmp_path, corpus, sr_model, name):
    case = corpus[name]
    if name in ("missing", "folder"):
        reason = _input_reason(name, case)
    else:  # a folder whose only photo is the bad file
        folder = tmp_path / "hr"
        folder.mkdir()
        (folder / case.path.name).write_bytes(case.path.read_bytes())
        case, reason = Case(folder / case.path.name, False, case.reason), case.reason
    spec = case.path if name in ("missing", "folder") else case.path.parent
    refused(tmp_path, case.path, reason, "mode=evaluate", "logger=none", f"checkpoint={sr_model}",
            f"input={spec}", "vgg.weights=random")


@pytest.mark.parametrize("name", REFUSED)
def test_multistyle_bad_input_is_refused(tmp_path, corpus, multi_model, name):
    case = corpus[name]
    refused(tmp_path, case.path, _input_reason(name, case), *STYLIZE, f"checkpoint={multi_model}",
            f"input={case.path}", "style=1")


@pytest.mark.parametrize("name", ["empty", "truncated_jpeg", "text_as_jpeg", "bomb"])
def test_video_bad_input_is_refused(tmp_path, corpus, good, name):
    pytest.importorskip("av")
    case = corpus[name]
    clip = tmp_path / f"{case.path.stem}.mp4"  # the same bytes where a video is expected
    clip.write_bytes(case.path.read_bytes())
    refused(tmp_path, clip, "", *STYLIZE, f"checkpoint={good['model']}", f"input={clip}")
