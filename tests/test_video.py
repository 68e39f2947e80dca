"""Video in, video out (nst/inference/video.py): what is kept from the source, streaming, shared statistics,
the CLI for style and super-resolution models, and bad clips (one line, nothing written)."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import pytest
import torch

import nst.cli
from nst.errors import NSTError
from nst.evaluation.flicker import pan
from nst.inference.jobs import plan_jobs
from nst.inference.stylize import Stylizer
from nst.models.modelfile import save_model
from nst.networks.srnet import SRNet
from nst.networks.transformer import TransformerNet

av = pytest.importorskip("av")
from conftest import compose_config  # noqa: E402

from nst.inference.video import frame_step  # noqa: E402
from nst.io.transcode import process_video  # noqa: E402
from nst.io.video import is_video, iter_frames, probe, write_frames  # noqa: E402
from tests.conftest import float32_atol  # noqa: E402


def frames_of(path: Path) -> list:
    with av.open(str(path)) as c:
        return list(c.decode(video=0))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def clip(tmp_path) -> Path:
    """12 frames of a pan, 25 frames/s, a tone, rotated 90 degrees, pixel aspect 4:3."""
    photo = torch.rand(1, 3, 40, 120, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "clip.mp4"
    write_frames(path, pan(photo, 12, 2, 64, 40), 25, audio=True, rotation=90,
                 sample_aspect_ratio=Fraction(4, 3))
    return path


@pytest.fixture
def model(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_model(tmp_path / "tiny.safetensors", TransformerNet(channels=8, num_residual=1).eval(),
                      {"style": "starry_night.jpg"})


def run(tmp_path, *overrides: str):
    cfg = compose_config(["logger=none", f"paths.output_dir={tmp_path / 'run'}", *overrides])
    return nst.cli.run(cfg)


def test_videos_are_recognised_by_their_container():
    assert all(is_video(f"a{ext}") for ext in (".mp4", ".MOV", ".mkv", ".webm", ".avi"))
    assert not is_video("a.jpg") and not is_video("a.gif")


def test_a_folder_plan_keeps_videos_and_their_extension(tmp_path, clip):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.mkv").write_bytes(clip.read_bytes())
    jobs = plan_jobs(tmp_path, tmp_path / "out", tmp_path / "default", ext=".jpg")
    targets = sorted(str(j.target.relative_to(tmp_path / "out")) for j in jobs)
    assert targets == ["clip.mp4", "sub/b.mkv"]  # .jpg is for images; videos keep their container


def test_frames_rate_duration_rotation_aspect_and_audio_are_kept(tmp_path, clip):
    out = tmp_path / "out.mp4"
    assert process_video(clip, out, lambda x: 1 - x) == 12
    src, dst = probe(clip), probe(out)
    assert (dst.width, dst.height, dst.frames, dst.rate) == (src.width, src.height, 12, src.rate)
    assert dst.duration == pytest.approx(src.duration, abs=0.01)
    assert dst.sample_aspect_ratio == Fraction(4, 3) and dst.audio == "aac"
    a, b = frames_of(clip), frames_of(out)
    assert [f.time for f in a] == [f.time for f in b] and b[0].rotation == 90
    with av.open(str(clip)) as c1, av.open(str(out)) as c2:
        p1 = [bytes(p) for p in c1.demux(audio=0) if p.size]
        p2 = [bytes(p) for p in c2.demux(audio=0) if p.size]
    assert p1 == p2  # the audio is copied packet for packet, not re-encoded
    x, y = a[5].to_ndarray(format="rgb24").astype(float), b[5].to_ndarray(format="rgb24").astype(float)
    assert abs((255 - x - y).mean()) < 6  # the step ran on the frames (inverted, within codec loss)


def test_a_variable_frame_rate_keeps_its_timestamps(tmp_path):
    times = [0.0, 0.04, 0.2, 0.25, 0.6]
    src = tmp_path / "vfr.mp4"
    write_frames(src, (torch.rand(1, 3, 32, 32) for _ in times), 25, times=times)
    process_video(src, tmp_path / "out.mp4", lambda x: x)
    assert [round(float(f.time), 3) for f in frames_of(tmp_path / "out.mp4")] == times


def test_odd_sides_lose_their_last_row_and_column(tmp_path):
    src = tmp_path / "odd.avi"  # PNG frames: any size, which H.264 cannot encode
    write_frames(src, (torch.rand(1, 3, 33, 47) for _ in range(3)), 10, codec="png")
    process_video(src, tmp_path / "out.mp4", lambda x: x)
    info = probe(tmp_path / "out.mp4")
    assert (info.width, info.height, info.frames) == (46, 32, 3)


def test_size_scales_the_longer_side(tmp_path, clip):
    process_video(clip, tmp_path / "out.mp4", lambda x: x, size=32)
    assert (probe(tmp_path / "out.mp4").width, probe(tmp_path / "out.mp4").height) == (32, 20)


def test_the_clip_is_streamed_in_batches(tmp_path, clip):
    seen = []
    process_video(clip, tmp_path / "out.mp4", lambda x: (seen.append(x.shape[0]), x)[1], batch_size=5)
    assert seen == [5, 5, 2]  # never more than batch_size frames held


def test_progress_reports_frames_per_second(tmp_path, clip):
    lines = []
    process_video(clip, tmp_path / "out.mp4", lambda x: x, log=lines.append)
    assert lines and "frame 12/12 (100 %)" in lines[-1] and "frames/s" in lines[-1]


def test_a_step_of_the_wrong_size_is_refused_and_nothing_is_written(tmp_path, clip):
    with pytest.raises(NSTError, match="returned"):
        process_video(clip, tmp_path / "out.mp4", lambda x: x[..., :-2])
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


def test_an_interrupt_leaves_no_partial_file(tmp_path, clip):
    calls = []

    def step(x):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return x

    with pytest.raises(KeyboardInterrupt):
        process_video(clip, tmp_path / "out.mp4", step, batch_size=4)
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("kind, message", [
    ("text", "not a video FFmpeg can read"), ("audio", "audio only"), ("truncated", "truncated at frame"),
    ("missing", "no such file")])
def test_bad_clips_get_one_line_and_no_output(tmp_path, clip, kind, message):
    src = tmp_path / "bad.mp4"
    if kind == "text":
        src.write_text("not a video\n")
    elif kind == "audio":
        with av.open(str(src), "w") as c:
            a = c.add_stream("aac", rate=44100)
            import numpy as np
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
            f.sample_rate, f.pts = 44100, 0
            c.mux(a.encode(f))
            c.mux(a.encode(None))
    elif kind == "truncated":
        frames = [torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(20)]
        with av.open(str(tmp_path / "full.mp4"), "w", options={"movflags": "faststart"}) as c:
            v = c.add_stream("libx264", rate=10)
            v.width = v.height = 64
            for i, x in enumerate(frames):
                f = av.VideoFrame.from_ndarray(x[0].mul(255).byte().permute(1, 2, 0).numpy(), format="rgb24")
                f.pts = i
                c.mux(v.encode(f))
            c.mux(v.encode(None))
        data = (tmp_path / "full.mp4").read_bytes()
        src.write_bytes(data[: len(data) // 2])
    elif kind == "missing":
        src = tmp_path / "nowhere.mp4"
    out = tmp_path / "out.mp4"
    with pytest.raises(NSTError, match=message) as e:
        process_video(src, out, lambda x: x)
    assert str(src) in str(e.value) and "\n" not in str(e.value)
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_clip_without_frames_is_refused(tmp_path):
    src = tmp_path / "empty.mp4"
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=10)
        v.width = v.height = 32
        c.mux(v.encode(None))
    with pytest.raises(NSTError, match=f"{src}: "):
        process_video(src, tmp_path / "out.mp4", lambda x: x)
    assert not (tmp_path / "out.mp4").exists()


def test_an_image_output_for_a_video_is_refused(tmp_path, clip):
    with pytest.raises(NSTError, match="a video needs a video output"):
        process_video(clip, tmp_path / "out.jpg", lambda x: x)


def test_without_pyav_the_error_says_how_to_install_it(tmp_path, clip, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(NSTError, match=r"pip install 'nst\[video\]'"):
        process_video(clip, tmp_path / "out.mp4", lambda x: x)


def test_clip_statistics_are_the_first_frames_for_every_frame():
    torch.manual_seed(0)
    net = TransformerNet(channels=8, num_residual=1).eval()
    stylizer = Stylizer(net, backend="torch")
    x = torch.rand(5, 3, 24, 24)
    step = frame_step(stylizer, "clip")
    first, rest = step(x[:2]), step(x[2:])  # the statistics persist across batches of one clip
    stats = stylizer.capture_stats(x[:1])
    expect = torch.cat([stylizer.stylize_tensor(x[i:i + 1], stats=stats) for i in range(5)])
    # batches of two and three frames vs one: other kernels, equal up to float32 rounding
    torch.testing.assert_close(torch.cat([first, rest]), expect, rtol=0,
                               atol=float32_atol(net, x, norm_stats=stats))
    assert not torch.allclose(expect[3], stylizer.stylize_tensor(x[3:4])[0])  # not the frame's own


def test_scene_statistics_are_recaptured_at_a_cut():
    torch.manual_seed(0)
    net = TransformerNet(channels=8, num_residual=1).eval()
    stylizer = Stylizer(net, backend="torch")
    dark, bright = torch.rand(2, 3, 24, 24) * 0.2, 0.8 + torch.rand(2, 3, 24, 24) * 0.2
    out = frame_step(stylizer, "scene")(torch.cat([dark, bright]))
    stats = stylizer.capture_stats(bright[:1])
    cut = stylizer.stylize_tensor(bright, stats=stats)
    # the clip's frames in other batches than the cut's two: equal up to float32 rounding
    torch.testing.assert_close(out[2:], cut, rtol=0, atol=float32_atol(net, bright, norm_stats=stats))


def test_a_bad_video_stats_choice_gets_its_line():
    stylizer = Stylizer(TransformerNet(channels=8, num_residual=1).eval(), backend="torch")
    with pytest.raises(NSTError, match="video_stats='sometimes'"):
        frame_step(stylizer, "sometimes")


def test_large_frames_go_through_tiles(tmp_path, clip):
    torch.manual_seed(0)
    stylizer = Stylizer(TransformerNet(channels=8, num_residual=1).eval(), backend="torch",
                        tile_size=32, tile_overlap=8)
    seen = []
    original = stylizer._forward
    stylizer._forward = lambda x, stats=None: (seen.append(tuple(x.shape[-2:])), original(x, stats))[1]
    process_video(clip, tmp_path / "out.mp4", frame_step(stylizer), batch_size=4)
    assert seen and max(max(s) for s in seen) <= 32  # no forward pass over the tile size
    assert probe(tmp_path / "out.mp4").frames == 12


def test_stylize_cli_writes_a_clip_and_skips_an_existing_one(tmp_path, clip, model, capsys):
    out = tmp_path / "styled.mp4"
    run(tmp_path, "mode=stylize", f"checkpoint={model}", f"input={clip}", f"output={out}", "video_stats=clip")
    assert probe(out).frames == 12 and probe(out).audio == "aac"
    before = out.stat().st_mtime_ns
    run(tmp_path, "mode=stylize", f"checkpoint={model}", f"input={clip}", f"output={out}")
    assert out.stat().st_mtime_ns == before and "exists, skipped" in capsys.readouterr().err


def test_upscale_cli_writes_a_clip_factor_times_larger(tmp_path, clip):
    torch.manual_seed(0)
    sr = save_model(tmp_path / "sr.safetensors", SRNet(factor=4, channels=8, num_residual=1).eval(),
                    {"degrade": {"factor": 4, "sigma": 1.0}})
    out = tmp_path / "up.mp4"
    run(tmp_path, "mode=upscale", f"checkpoint={sr}", f"input={clip}", f"output={out}")
    info = probe(out)
    assert (info.width, info.height, info.frames, info.audio) == (256, 160, 12, "aac")


def test_iter_frames_yields_one_frame_at_a_time(clip):
    got = list(iter_frames(clip, limit=3))
    assert len(got) == 3 and got[0].shape == (1, 3, 40, 64)


def test_a_resolution_change_midway_is_scaled_to_the_first():
    from nst.io.video import frames_to_tensor

    class Frame:  # what PyAV decodes from a WebRTC recording whose resolution changes
        def __init__(self, h, w):
            self.array = (torch.rand(h, w, 3) * 255).byte().numpy()

        def to_ndarray(self, format):
            return self.array

    odd = Frame(25, 33)
    x = frames_to_tensor([Frame(24, 32), odd, Frame(48, 64)], (24, 32))
    assert x.shape == (3, 3, 24, 32)  # stacked: each frame brought to the clip's size on its own
    expect = torch.from_numpy(odd.array).permute(2, 0, 1).float()[:, :24, :32] / 255
    torch.testing.assert_close(x[1], expect)  # odd sides: cropped, not resampled


def test_avi_output_counts_frames_at_a_constant_rate(tmp_path, clip):
    out = tmp_path / "out.avi"
    process_video(clip, out, lambda x: x)
    info = probe(out)
    assert info.rate == 25 and len(frames_of(out)) == 12
