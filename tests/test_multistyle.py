"""Many styles in one network as a user meets them: training (styles=[...], finetune=norm, a strength
input), stylizing a chosen style or a mix (API, folders, tiles), exports, mode=models, bad input."""

from __future__ import annotations

import pytest
import torch

import nst
import nst.cli
from nst.errors import NSTError
from nst.inference.stylize import Stylizer
from nst.io.image import load_image, save_image
from nst.models.export import export_onnx
from nst.models.modelfile import load_network, save_model
from nst.networks.transformer import TransformerNet
from tests.conftest import float32_atol
from tests.test_stylize_cli import run
from tests.test_train_cli import config, files  # noqa: F401  (the fixture)

TINY = ["debug=tiny", "logger=csv", "trainer.log_every_n_steps=1", "ckpt_every=100",
        "samples.every=0", "~loss.style_layers.relu3_3", "~loss.style_layers.relu4_3"]
NAMES = ["starry.png", "wave.png", "comp.png"]


@pytest.fixture
def paintings(files):  # noqa: F811
    colours = [(0.9, 0.3, 0.1), (0.1, 0.4, 0.9), (0.2, 0.8, 0.2)]
    for i, (name, c) in enumerate(zip(NAMES, colours)):
        period = 4 + 4 * i
        stripes = (torch.arange(48).view(1, 1, 1, 48) % period < period // 2).float().expand(1, 3, 48, 48)
        save_image(stripes * torch.tensor(c).view(1, 3, 1, 1) + 0.05, files / name)
    return files


def train(folder, *overrides):
    return nst.cli.run(config(folder, *TINY, f"data.root={folder / 'photos'}", f"output={folder / 'out'}",
                              f"samples.images={folder / 'sample.png'}", *overrides))


def styles_arg(folder):
    return "styles=[" + ",".join(str(folder / n) for n in NAMES) + "]"


@pytest.fixture
def multi_model(tmp_path):
    torch.manual_seed(0)
    net = TransformerNet(8, 1, output="linear", num_styles=3)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn(p.shape))
    return save_model(tmp_path / "multi.safetensors", net.eval(), {"styles": NAMES, "style": NAMES})


def test_training_lowers_the_loss_of_every_style(paintings, tmp_path):
    from nst.cli.build import config_loss
    from nst.networks.conditional import adopt

    torch.manual_seed(0)
    plain = save_model(tmp_path / "start.safetensors", TransformerNet(8, 1).eval(), {"style": ["x.jpg"]})
    path = train(paintings, styles_arg(paintings), f"init_from={plain}", "trainer.max_steps=30",
                 "model.optimizer.lr=1e-2", "name=multi")
    net, meta = load_network(path)
    assert net.num_styles == 3 and meta["styles"] == NAMES
    start = TransformerNet(**net.config).eval()
    adopt(start, load_network(plain)[0])  # where training began: every style row the plain network's
    loss = config_loss(config(paintings, *TINY, styles_arg(paintings), f"data.root={paintings / 'photos'}"))
    loss.set_style([load_image(paintings / n, max_side=48) for n in NAMES])
    photos = torch.cat([load_image(paintings / "photos" / f"{i}.png") for i in range(3)])
    for k in range(3):
        mix, idx = torch.eye(3)[k].expand(3, 3), torch.full((3,), k)
        with torch.no_grad():
            before = loss(start(photos, style=mix), photos, style=idx)["loss"]
            after = loss(net(photos, style=mix), photos, style=idx)["loss"]
        assert after < before, (k, float(before), float(after))


def test_styles_and_num_styles_must_agree(paintings):
    with pytest.raises(NSTError, match="num_styles=2 but 3 style images"):
        train(paintings, styles_arg(paintings), "model.net.num_styles=2", "trainer.max_steps=1")


def test_style_and_styles_together_are_refused(paintings):
    with pytest.raises(NSTError, match="pass one of them"):
        train(paintings, styles_arg(paintings), f"style={paintings / 'waves.png'}", "trainer.max_steps=1")


def test_finetune_norm_adds_a_style_and_keeps_every_shared_weight(paintings, multi_model):
    source, _ = load_network(multi_model)
    path = train(paintings, f"init_from={multi_model}", f"style={paintings / 'waves.png'}", "finetune=norm",
                 "trainer.max_steps=3", "model.optimizer.lr=1e-2", "name=added")
    net, meta = load_network(path)
    assert net.num_styles == 4 and meta["styles"] == [*NAMES, "waves.png"]
    assert meta["init_from"]["finetune"] == "norm"
    old, new = source.state_dict(), net.state_dict()
    for k, v in old.items():
        if k.endswith(("norm.weight", "norm.bias")):
            assert torch.equal(new[k][:3], v), k
        else:
            assert torch.equal(new[k], v), k
    assert any(not torch.equal(new[k][3], old[k].mean(0)) for k in old if k.endswith("norm.weight"))


def test_finetune_norm_from_a_single_style_model(paintings, tmp_path):
    torch.manual_seed(0)
    single = save_model(tmp_path / "one.safetensors", TransformerNet(8, 1).eval(), {"style": ["first.jpg"]})
    path = train(paintings, f"init_from={single}", f"style={paintings / 'waves.png'}", "finetune=norm",
                 "trainer.max_steps=2", "name=two")
    net, meta = load_network(path)
    assert net.num_styles == 2 and meta["styles"] == ["first.jpg", "waves.png"]


@pytest.mark.parametrize("overrides,message", [
    (["finetune=norm"], "needs init_from"),
    (["finetune=all", "init_from=x.safetensors"], "choose norm"),
])
def test_finetune_bad_settings_get_their_line(paintings, overrides, message):
    with pytest.raises(NSTError, match=message):
        train(paintings, f"style={paintings / 'waves.png'}", "trainer.max_steps=1", *overrides)


def test_finetune_norm_on_another_architecture_is_one_line(paintings, tmp_path):
    from nst.networks.srnet import SRNet

    sr = save_model(tmp_path / "sr.safetensors", SRNet(4, 8, 1), {})
    with pytest.raises(NSTError, match="adds a style to a style network"):
        train(paintings, f"init_from={sr}", f"style={paintings / 'waves.png'}", "finetune=norm",
              "trainer.max_steps=1")


def test_init_from_a_file_that_is_no_model_is_one_line(paintings):
    bad = paintings / "notes.safetensors"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(NSTError, match="notes.safetensors"):
        train(paintings, f"init_from={bad}", f"style={paintings / 'waves.png'}", "finetune=norm",
              "trainer.max_steps=1")


@pytest.mark.parametrize("overrides,message", [
    (["strength_range=[0.5]"], "two numbers"), (["strength_range=[0.8,0.2]"], "0 <= low <= high <= 1"),
    (["strength_range=[0,2]"], "0 <= low <= high <= 1")])
def test_a_bad_strength_range_gets_its_line(paintings, overrides, message):
    with pytest.raises(NSTError, match=message):
        train(paintings, f"style={paintings / 'waves.png'}", "model.net.strength_input=true",
              "trainer.max_steps=1", *overrides)


def test_finetune_norm_refuses_weight_decay(paintings, multi_model):
    with pytest.raises(NSTError, match="weight decay"):
        train(paintings, f"init_from={multi_model}", f"style={paintings / 'waves.png'}", "finetune=norm",
              "+model.optimizer.weight_decay=0.01", "trainer.max_steps=1")


def test_export_checks_a_conditional_model_in_every_format(tmp_path, multi_model):
    pytest.importorskip("onnxruntime")
    written = run(tmp_path, "mode=export", f"checkpoint={multi_model}", f"output={tmp_path / 'x'}",
                  "formats=[torchscript,onnx]")
    assert set(written) == {"torchscript", "onnx"}


def test_a_strength_network_trains_and_records_what_strength_does(paintings):
    path = train(paintings, f"style={paintings / 'waves.png'}", "model.net.strength_input=true",
                 "trainer.max_steps=4", "strength_range=[0.0,1.0]", "name=strong")
    net, meta = load_network(path)
    assert net.strength_input and meta["strength"] == {"conditioned": True, "range": [0.0, 1.0]}
    assert any(p.abs().sum() > 0 for p in net.strength_net[2].parameters())  # its MLP trained


# ---- inference ----------------------------------------------------------------------------------

def test_the_api_picks_a_style_by_index_or_name(multi_model):
    x = torch.rand(1, 3, 24, 20)
    model = nst.load_model(multi_model, "cpu")
    by_index, by_name = model(x, style=1), model(x, style="wave")
    net, _ = load_network(multi_model)
    torch.testing.assert_close(by_index, by_name)
    # folded vs unfolded norms: equal up to float32 rounding
    torch.testing.assert_close(by_index, net(x, style=torch.eye(3)[1]).clamp(0, 1), rtol=0,
                               atol=float32_atol(net, x, style=torch.eye(3)[1]))
    assert (model(x, style=0) - by_index).abs().max() > 1e-3


def test_a_one_hot_mix_equals_that_style(multi_model):
    model, x = nst.load_model(multi_model, "cpu"), torch.rand(1, 3, 24, 20)
    torch.testing.assert_close(model(x, style_mix=[0, 0, 2]), model(x, style=2))


def test_a_mix_works_in_tiles(multi_model):
    mix = [0.5, 0, 0.5]
    model = nst.load_model(multi_model, "cpu", style_mix=mix, tile_size=48, tile_overlap=16)
    net, _ = load_network(multi_model)
    plain = Stylizer(net.specialize(torch.tensor(mix) / sum(mix)), {}, tile_size=48, tile_overlap=16)
    x = torch.rand(1, 3, 70, 90)
    torch.testing.assert_close(model(x), plain(x), rtol=0, atol=1e-6)  # the same tiles, the mix's norms
    assert (model(x) - model(x, style=0)).abs().max() > 1e-3


def test_onnx_takes_the_mix_as_an_input(multi_model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net, _ = load_network(multi_model)
    path = export_onnx(net, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x, mix = torch.rand(1, 3, 30, 26), torch.tensor([[0.2, 0.8, 0.0]])
    feed = {"image": x.numpy(), "style_mix": mix.numpy()}  # no strength input: that network has none
    (y,) = session.run(None, feed)
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(y), net(x, style=mix), rtol=0, atol=1e-4)


def test_a_strength_network_takes_strength_as_its_input(tmp_path):
    torch.manual_seed(0)
    net = TransformerNet(8, 1, output="linear", strength_input=True)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn(p.shape))
    stylizer = Stylizer(net.eval(), {}, backend="torch")
    x, s = torch.rand(1, 3, 20, 20), torch.tensor([0.3])
    with torch.no_grad():
        expected = net(x, strength=s).clamp(0, 1)
        # the Stylizer runs the folded network (net.specialize: fused norms, other kernels), which
        # agrees with the unfolded one to float32's rounding of the output conv's sums, not bit for bit
        torch.testing.assert_close(stylizer(x, strength=0.3), expected, rtol=0,
                                   atol=float32_atol(net, x, strength=s))
    assert stylizer.strength_conditioned


def test_the_fold_of_a_strength_is_exact():
    # the exact half of the check above, on the parameters: a float64 forward cannot be exact
    # either, since the conditional network computes its norms' affine in float32 by design
    torch.manual_seed(0)
    net = TransformerNet(8, 1, output="linear", strength_input=True)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn(p.shape))
    plain, mine = net.eval().specialize(strength=0.3), net.state_dict()
    for (weight, bias), (g, b) in zip(plain.norm_params(), net.norm_affine(None, torch.tensor([0.3]))):
        assert torch.equal(weight, g[0]) and torch.equal(bias, b[0])  # the strength's gamma and beta
    for k, v in plain.state_dict().items():
        if not k.endswith(("norm.weight", "norm.bias")):
            assert torch.equal(v, mine[k]), k  # every other weight untouched


def test_stylize_cli_style_and_mix_over_a_folder(tmp_path, multi_model):
    for i in range(2):
        photo = torch.rand(1, 3, 21, 17, generator=torch.Generator().manual_seed(i))
        save_image(photo, tmp_path / "in" / f"{i}.png")
    run(tmp_path, "mode=stylize", f"checkpoint={multi_model}", f"input={tmp_path / 'in'}",
        f"output={tmp_path / 'a'}", "style=comp")
    run(tmp_path, "mode=stylize", f"checkpoint={multi_model}", f"input={tmp_path / 'in'}",
        f"output={tmp_path / 'b'}", "style_mix=[0,0,1]")
    run(tmp_path, "mode=stylize", f"checkpoint={multi_model}", f"input={tmp_path / 'in'}",
        f"output={tmp_path / 'c'}")
    for i in range(2):
        a, b, first = (load_image(tmp_path / d / f"{i}.png") for d in "abc")
        torch.testing.assert_close(a, b)
        assert (a - first).abs().max() > 0.01  # style 2, not the default style 0


@pytest.mark.parametrize("overrides,message", [
    (["style=7"], "this model has 3 styles: 0 starry.png, 1 wave.png, 2 comp.png"),
    (["style=monet"], "this model has 3 styles"),
    (["style_mix=[1,1]"], "has 2 weights, this model has 3"),
    (["style_mix=[1,-1,0]"], ">= 0"),
    (["style_mix=[0,0,0]"], "not all zero"),
    (["style=1", "style_mix=[1,0,0]"], "pass one of them"),
])
def test_bad_style_choices_get_their_line(tmp_path, multi_model, overrides, message):
    save_image(torch.rand(1, 3, 21, 17), tmp_path / "a.png")
    with pytest.raises(NSTError, match=message):
        run(tmp_path, "mode=stylize", f"checkpoint={multi_model}", f"input={tmp_path / 'a.png'}", *overrides)


def test_a_style_for_a_single_style_model_names_its_style(tmp_path):
    path = save_model(tmp_path / "one.safetensors", TransformerNet(8, 1).eval(), {"style": ["udnie.jpg"]})
    with pytest.raises(NSTError, match="this model has 1 style: 0 udnie.jpg"):
        nst.load_model(path, "cpu", style=2)
    nst.load_model(path, "cpu", style="udnie")  # its own style by name is fine


def test_mode_models_lists_a_models_styles(tmp_path, multi_model, capsys):
    run(tmp_path, "mode=models", f"checkpoint={multi_model}")
    out = capsys.readouterr().out
    for i, name in enumerate(NAMES):
        assert f"style {i}: {name}" in out
    assert "a blend of the result toward the photo" in out
