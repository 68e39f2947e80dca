"""nst.io.image: every test writes its own tiny files in tmp_path (PIL/numpy) and checks one property."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nst.errors import NSTError
from nst.io import image as nimg
from nst.io.image import list_images, load_image, load_image_alpha, resize, save_image

RED, TEAL = (200, 30, 40), (20, 140, 160)


def _flat(path: Path, colour=RED, size=(24, 16), mode="RGB", **save) -> Path:
    Image.new(mode, size, colour).save(path, **save)
    return path


def _rand8(h=16, w=24, c=3, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8).squeeze()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(path: Path, w: int, h: int, depth: int, colour_type: int, raw: bytes) -> Path:
    """Hand-written PNG, for what PIL cannot write (16-bit colour) or should never write (bomb header)."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw))
                     + _chunk(b"IEND", b""))
    return path


def _png16_rgb(path: Path, a: np.ndarray) -> Path:
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in a)
    return _png(path, a.shape[1], a.shape[0], 16, 2, rows)


def _px(t: torch.Tensor, y=0, x=0) -> list[float]:
    return [round(v * 255) for v in t[0, :3, y, x].tolist()]


# ---- loading: formats and modes ------------------------------------------------------------------

@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "bmp", "tif"])
def test_load_formats_give_float_rgb_nchw_with_the_right_colour(tmp_path, ext):
    img = load_image(_flat(tmp_path / f"a.{ext}"))
    assert img.shape == (1, 3, 16, 24) and img.dtype == torch.float32
    assert np.allclose(_px(img, 8, 12), RED, atol=4)


def test_load_8bit_png_is_exact(tmp_path):
    a = _rand8()
    Image.fromarray(a).save(tmp_path / "a.png")
    assert torch.equal(load_image(tmp_path / "a.png")[0].permute(1, 2, 0), torch.from_numpy(a).float() / 255)


def test_load_16bit_grey_png_scales_by_65535(tmp_path):
    Image.fromarray(np.array([[0, 1, 32768, 65535]], dtype=np.uint16)).save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    want = torch.tensor([0, 1, 32768, 65535], dtype=torch.float32) / 65535
    assert torch.allclose(img[0, 0, 0], want, rtol=0, atol=1e-7) and torch.equal(img[0, 0], img[0, 2])


def test_load_16bit_colour_png_keeps_full_precision(tmp_path):
    a = np.array([[[1, 300, 65535], [32768, 0, 65280]]], dtype=np.uint16)
    img = load_image(_png16_rgb(tmp_path / "c.png", a))
    want = torch.from_numpy(a.astype(np.float32) / 65535).permute(2, 0, 1)
    assert torch.allclose(img[0], want, rtol=0, atol=1e-7)  # 1/65535 would be 0 through 8 bits


def test_load_palette_png(tmp_path):
    im = Image.new("RGB", (8, 8), TEAL).convert("P", palette=Image.Palette.ADAPTIVE)
    im.save(tmp_path / "p.png")
    assert _px(load_image(tmp_path / "p.png"), 4, 4) == list(TEAL)


def test_load_palette_png_with_transparency_gives_alpha(tmp_path):
    im = Image.new("P", (8, 8), 1)
    im.putpalette([0, 0, 0, *TEAL] + [0] * 762)
    im.paste(0, (0, 0, 4, 8))
    im.save(tmp_path / "p.png", transparency=0)
    _, alpha = load_image_alpha(tmp_path / "p.png")
    assert alpha[0, 0, 0].tolist() == [0.0] * 4 + [1.0] * 4


def test_load_grey_l_repeats_the_channel(tmp_path):
    img = load_image(_flat(tmp_path / "l.png", 77, mode="L"))
    assert _px(img) == [77, 77, 77]


def test_load_la_gives_alpha(tmp_path):
    _, alpha = load_image_alpha(_flat(tmp_path / "la.png", (77, 128), mode="LA"))
    assert torch.allclose(alpha, torch.full((1, 1, 16, 24), 128 / 255))


def test_load_rgba_drops_alpha_without_compositing(tmp_path):
    img = load_image(_flat(tmp_path / "a.png", (*RED, 0), mode="RGBA"))
    assert img.shape[1] == 3 and _px(img) == list(RED)


def test_load_image_alpha_returns_rgba_alpha(tmp_path):
    _, alpha = load_image_alpha(_flat(tmp_path / "a.png", (*RED, 51), mode="RGBA"))
    assert alpha.shape == (1, 1, 16, 24) and alpha.unique().tolist() == [pytest.approx(0.2)]


def test_load_image_alpha_is_none_without_transparency(tmp_path):
    assert load_image_alpha(_flat(tmp_path / "a.png"))[1] is None


def test_load_cmyk_jpeg_colour_is_roughly_right(tmp_path):
    img = load_image(_flat(tmp_path / "c.jpg", (0, 255, 255, 0), mode="CMYK"))  # pure red in CMYK
    assert np.allclose(_px(img, 8, 8), [255, 0, 0], atol=12)


def _exif6(path: Path) -> Path:
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = RED  # left half red: orientation 6 (turn 90 deg clockwise) puts it on top
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(a).save(path, exif=exif, quality=95)
    return path


def test_exif_orientation_swaps_height_and_width(tmp_path):
    assert load_image(_exif6(tmp_path / "o.jpg")).shape == (1, 3, 40, 20)


def test_exif_orientation_turns_the_pixels(tmp_path):
    img = load_image(_exif6(tmp_path / "o.jpg"))
    assert np.allclose(_px(img, 5, 10), RED, atol=10) and np.allclose(_px(img, 35, 10), [0, 0, 0], atol=10)


def test_load_max_side_resizes_on_load(tmp_path):
    _flat(tmp_path / "a.jpg", size=(256, 128))
    assert load_image(tmp_path / "a.jpg", max_side=32).shape == (1, 3, 16, 32)


def test_load_jpeg_draft_matches_full_decode_then_resize(tmp_path):
    x = np.linspace(0, 255, 256)
    a = np.stack([np.add.outer(x[:128] / 2, x / 2), np.tile(x, (128, 1)), np.full((128, 256), 90.0)], -1)
    Image.fromarray(a.astype(np.uint8)).save(tmp_path / "g.jpg", quality=95)
    fast = load_image(tmp_path / "g.jpg", max_side=32)
    slow = resize(load_image(tmp_path / "g.jpg"), max_side=32)
    assert (fast - slow).abs().mean() < 0.01


def test_load_big_jpeg_small_decodes_at_reduced_scale(tmp_path, monkeypatch):
    from PIL import JpegImagePlugin

    requests = []
    real = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft",
                        lambda self, mode, size: requests.append(size) or real(self, mode, size))
    load_image(_flat(tmp_path / "a.jpg", size=(256, 128)), max_side=32)
    assert requests == [(32, 16)]


def test_load_scale_and_max_side_together_is_refused(tmp_path):
    with pytest.raises(NSTError, match="only one"):
        load_image(_flat(tmp_path / "a.png"), max_side=8, scale=0.5)


# ---- loading: refusals ---------------------------------------------------------------------------

def _bomb(path: Path) -> Path:
    return _png(path, 100_000, 100_000, 8, 2, b"\x00" * 64)  # claims 10 gigapixels, holds 64 bytes


def test_bomb_header_is_refused_before_decoding(tmp_path):
    with pytest.raises(NSTError, match="too large") as e:
        load_image(_bomb(tmp_path / "bomb.png"))
    assert "bomb.png" in str(e.value) and "max_pixels" in str(e.value)


def test_small_max_pixels_is_enforced(tmp_path):
    with pytest.raises(NSTError, match=r"a\.png: image too large \(24x16"):
        load_image(_flat(tmp_path / "a.png"), max_pixels=100)


def test_max_pixels_overrides_pillows_own_limit_and_restores_it(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # Pillow alone would refuse 24x16 = 384 px
    assert load_image(_flat(tmp_path / "a.png")).shape == (1, 3, 16, 24)
    assert Image.MAX_IMAGE_PIXELS == 50


def _truncate(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _noisy(path: Path) -> Path:
    Image.fromarray(_rand8(64, 64)).save(path)
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BAD_FILES = {
    "missing": (lambda d: d / "nope.jpg", "no such file"),
    "folder": (lambda d: _folder(d / "dir.jpg"), "is a folder"),
    "empty": (lambda d: _bytes(d / "empty.png", b""), "empty file"),
    "truncated_jpeg": (lambda d: _truncate(_noisy(d / "cut.jpg")), "truncated or corrupt"),
    "truncated_png": (lambda d: _truncate(_noisy(d / "cut.png")), "truncated or corrupt"),
    "text_as_jpeg": (lambda d: _bytes(d / "notes.jpg", b"hello, not a photo"), "not an image file"),
    "png_garbage_after_header": (
        lambda d: _bytes(d / "bad.png", _noisy(d / "ok.png").read_bytes()[:40] + b"x" * 99),
        "truncated or corrupt"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_raises_one_line_nsterror_naming_it(tmp_path, case):
    make, reason = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(NSTError) as e:
        load_image(path)
    msg = str(e.value)
    assert msg.startswith(str(path)) and reason in msg and "\n" not in msg


# ---- saving --------------------------------------------------------------------------------------

def test_png_round_trip_is_exact_for_8bit_values(tmp_path):
    img = torch.from_numpy(_rand8()).permute(2, 0, 1)[None].float() / 255
    assert torch.equal(load_image(save_image(img, tmp_path / "a.png")), img)


def test_save_rounds_instead_of_truncating(tmp_path):
    save_image(torch.full((3, 2, 2), 100.6 / 255), tmp_path / "a.png")
    assert np.asarray(Image.open(tmp_path / "a.png"))[0, 0, 0] == 101


def test_save_clamps_out_of_range_values(tmp_path):
    img = torch.tensor([-0.5, 0.5, 1.5]).view(3, 1, 1).expand(3, 2, 2)
    save_image(img, tmp_path / "a.png")
    assert np.asarray(Image.open(tmp_path / "a.png"))[0, 0].tolist() == [0, 128, 255]


def test_save_does_not_mutate_its_input(tmp_path):
    img = torch.tensor([-0.5, 0.5, 1.5]).view(1, 3, 1, 1).repeat(1, 1, 2, 2)
    before = img.clone()
    save_image(img, tmp_path / "a.png", alpha=torch.full((1, 1, 2, 2), 2.0))
    assert torch.equal(img, before)


def test_jpeg_round_trip_is_close(tmp_path):
    img = resize(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)), size=(32, 32))
    assert (load_image(save_image(img, tmp_path / "a.jpg")) - img).abs().mean() < 0.02


def test_png_alpha_round_trip(tmp_path):
    alpha = torch.linspace(0, 1, 16).view(1, 1, 4, 4)
    _, back = load_image_alpha(save_image(torch.rand(1, 3, 4, 4), tmp_path / "a.png", alpha=alpha))
    assert torch.allclose(back, alpha, atol=0.5 / 255)


def test_jpeg_drops_alpha(tmp_path):
    save_image(torch.rand(3, 4, 4), tmp_path / "a.jpg", alpha=torch.ones(1, 4, 4))
    assert Image.open(tmp_path / "a.jpg").mode == "RGB"


@pytest.mark.parametrize("ext", ["webp", "bmp", "tiff", "JPEG"])
def test_save_chooses_format_by_extension(tmp_path, ext):
    save_image(torch.rand(3, 4, 4), tmp_path / f"a.{ext}")
    assert Image.open(tmp_path / f"a.{ext}").format == {"tiff": "TIFF", "JPEG": "JPEG"}.get(ext, ext.upper())


def test_save_unknown_extension_names_it(tmp_path):
    with pytest.raises(NSTError, match=r"out\.xyz: unknown image extension '\.xyz'"):
        save_image(torch.rand(3, 4, 4), tmp_path / "out.xyz")


def test_save_creates_parent_folders(tmp_path):
    assert save_image(torch.rand(3, 4, 4), tmp_path / "a" / "b" / "c.png").is_file()


def test_save_leaves_no_temporary_files(tmp_path):
    save_image(torch.rand(3, 4, 4), tmp_path / "a.png")
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_failed_save_leaves_no_partial_file(tmp_path, monkeypatch):
    def half_then_fail(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", half_then_fail)
    with pytest.raises(NSTError, match="a.png: cannot write image"):
        save_image(torch.rand(3, 4, 4), tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    (tmp_path / "a.png").write_bytes(b"old")
    monkeypatch.setattr(Image.Image, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(NSTError):
        save_image(torch.rand(3, 4, 4), tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes() == b"old"


def test_save_under_a_file_names_the_path(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NSTError, match=r"file[/\\]out\.png: cannot write"):
        save_image(torch.rand(3, 4, 4), tmp_path / "file" / "out.png")


def test_save_over_a_folder_names_the_path(tmp_path):
    (tmp_path / "out.png").mkdir()
    with pytest.raises(NSTError, match=r"out\.png: cannot write"):
        save_image(torch.rand(3, 4, 4), tmp_path / "out.png")


def test_save_refuses_nan(tmp_path):
    with pytest.raises(NSTError, match="NaN"):
        save_image(torch.full((3, 4, 4), float("nan")), tmp_path / "a.png")


# ---- resizing ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kw", "shape"), [
    ({"max_side": 10}, (10, 5)),        # down
    ({"max_side": 80}, (80, 40)),       # up too: max_side is the working size asked for
    ({"scale": 0.25}, (5, 2)),          # 2.5 rounds half to even
    ({"size": (7, 3)}, (7, 3)),
    ({"scale": 0.001}, (1, 1)),         # never below 1 px
])
def test_resize_shapes(kw, shape):
    assert resize(torch.rand(2, 3, 20, 10), **kw).shape == (2, 3, *shape)


def test_resize_antialiases_a_checkerboard_to_grey():
    board = (torch.arange(64).view(1, 64) + torch.arange(64).view(64, 1)) % 2
    small = resize(board.float().expand(1, 3, 64, 64), max_side=10)  # 6.4:1, where plain bicubic aliases
    assert abs(small.mean().item() - 0.5) < 0.01 and small.std().item() < 0.02


def test_resize_clamps_bicubic_overshoot():
    step = torch.zeros(1, 1, 4, 4)
    step[..., 2:] = 1
    up = resize(step, size=(16, 16))
    assert up.min() == 0 and up.max() == 1


def test_resize_without_options_returns_the_input():
    img = torch.rand(1, 3, 4, 4)
    assert resize(img) is img


@pytest.mark.parametrize("kw", [{"max_side": 0}, {"max_side": 2.5}, {"scale": -1.0}, {"scale": float("nan")}])
def test_resize_rejects_bad_options(kw):
    with pytest.raises(NSTError, match=next(iter(kw))):
        resize(torch.rand(1, 3, 4, 4), **kw)


# ---- listing -------------------------------------------------------------------------------------

def _tree(root: Path) -> Path:
    for rel in ["1.png", "b/2.JPG", "b/c/3.jpeg", "b/c/4.TIFF", "notes.txt", ".hidden.png", "b/._2.jpg",
                ".git/x.png"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    return root


def test_list_folder_is_recursive_sorted_and_skips_non_images(tmp_path):
    got = [p.relative_to(tmp_path).as_posix() for p in list_images(_tree(tmp_path))]
    assert got == ["1.png", "b/2.JPG", "b/c/3.jpeg", "b/c/4.TIFF"]


def test_list_glob_gives_sorted_matching_files(tmp_path):
    for name in ["x2.png", "x1.png", "y.png"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "x3.png").mkdir()
    assert [p.name for p in list_images(str(tmp_path / "x*.png"))] == ["x1.png", "x2.png"]


def test_list_single_file(tmp_path):
    assert list_images(_flat(tmp_path / "a.png")) == [tmp_path / "a.png"]


@pytest.mark.parametrize(("spec", "reason"), [
    ("missing.png", "no such file or folder"), ("empty_dir", "no image files"), ("z*.png", "no files match"),
])
def test_list_nothing_found_names_the_spec(tmp_path, spec, reason):
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(NSTError, match=reason) as e:
        list_images(tmp_path / spec)
    assert str(e.value).startswith(str(tmp_path / spec))


# ---- PIL bridge and real data --------------------------------------------------------------------

def test_to_pil_from_pil_round_trip():
    img = torch.from_numpy(_rand8(4, 6)).permute(2, 0, 1)[None].float() / 255
    assert torch.equal(nimg.from_pil(nimg.to_pil(img)), img)


def test_real_content_and_style_images_load(shared_data):  # skips without ../shared/data
    paths = list_images(shared_data / "content") + list_images(shared_data / "styles")
    shapes = [load_image(p, max_side=48).shape for p in paths]
    assert all(s[:2] == (1, 3) and max(s[2:]) == 48 for s in shapes)
