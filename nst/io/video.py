"""Video containers through PyAV: probe a clip, read its frames, write frames as a clip.

The encoder per output container and its options live here, and so do the one-line errors for
files FFmpeg cannot read (a truncated mp4, an image named .mp4, audio only).
:mod:`nst.io.transcode` runs a network over a clip with these pieces.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch
from torch import Tensor

from nst.errors import NSTError
from nst.io.files import VIDEO_EXTENSIONS, atomic_path, is_video  # noqa: F401 (public here too)

INSTALL = "pip install 'nst[video]' (or: pip install av)"
# the encoder per output container; each is in PyAV's own FFmpeg build
CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4"}
CODEC_OPTIONS = {"libx264": {"crf": "18", "preset": "medium"},  # visually lossless for stylized frames
            "libvpx-vp9": {"crf": "30", "b:v": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"},
            "mpeg4": {}}


def require_av():
    """The PyAV module, or a one-line NSTError that says how to install it."""
    try:
        import av
    except ImportError as e:
        raise NSTError(f"video files need PyAV, which is not installed: {INSTALL}") from e
    return av


def log_line(line: str) -> None:
    """The default progress line of a transcode: one line on stderr."""
    print(f"nst: {line}", file=sys.stderr, flush=True)


@dataclass
class VideoInfo:
    """What a clip's container says about its first video stream (``frames``: 0 when unknown)."""

    width: int
    height: int
    frames: int
    rate: Fraction | None
    duration: float | None
    sample_aspect_ratio: Fraction | None
    audio: str | None  # the audio codec's name, None without audio


def open_input(src: Path):
    """The clip opened for reading (NSTError in one line: missing, unreadable, not a video)."""
    av = require_av()
    if not src.is_file():
        raise NSTError(f"{src}: no such file")
    try:
        container = av.open(str(src))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise NSTError(f"{src}: not a video FFmpeg can read ({error_reason(e)})") from e
    fmt = container.format.name or ""
    if fmt == "image2" or fmt.endswith("_pipe"):  # FFmpeg sniffs content: a JPEG named .mp4 is one "frame"
        container.close()
        raise NSTError(f"{src}: not a video, FFmpeg reads it as an image ({fmt})")
    if not container.streams.video:
        kind = "audio only" if container.streams.audio else "no video stream"
        container.close()
        raise NSTError(f"{src}: {kind}, nothing to process")
    return container


def error_reason(e: BaseException) -> str:
    """What went wrong in a few words, for a one-line error."""
    return getattr(e, "strerror", None) or str(e).splitlines()[0] or type(e).__name__


def check_truncated(src: Path, stream) -> None:
    """An mp4/mov whose index points past the end of the file (a copy or download cut short) is
    refused before any decoding, naming the frame it ends at. Index entries that an edit list
    discards (a trimmed clip) do not count, so a trimmed file is not taken for a truncated one."""
    if "mp4" not in (stream.container.format.name or ""):
        return
    entries = [e for e in stream.index_entries if not e.is_discard]
    size = src.stat().st_size
    if entries and max(e.pos + e.size for e in entries) > size:
        inside = sum(e.pos + e.size <= size for e in entries)
        raise NSTError(f"{src}: truncated at frame {inside} of {len(entries)}; nothing written")


def container_info(container) -> VideoInfo:
    """The VideoInfo of an open container (its first video stream, and audio if any)."""
    v = container.streams.video[0]
    a = container.streams.audio[0] if container.streams.audio else None
    duration = float(v.duration * v.time_base) if v.duration and v.time_base else (
        container.duration / 1e6 if container.duration else None)
    return VideoInfo(v.codec_context.width, v.codec_context.height, int(v.frames or 0),
                     v.average_rate or v.guessed_rate, duration, v.sample_aspect_ratio or None,
                     a.codec_context.name if a is not None else None)


def probe(src: str | Path) -> VideoInfo:
    with open_input(Path(src)) as container:
        return container_info(container)


def output_size(height: int, width: int, size: int | None, factor: int = 1) -> tuple[int, int]:
    """The (height, width) frames are processed at: ``size`` px on the longer side when given,
    then cropped to even sides after ``factor`` x (what 4:2:0 encoders need)."""
    h, w = height, width
    if size:
        scale = size / max(h, w)
        h, w = max(2, round(h * scale)), max(2, round(w * scale))
    # crop before the network so that factor x the input is even (any factor >= 2 already is)
    if factor % 2:
        h, w = h - h % 2, w - w % 2
    return h, w


def _frame_tensor(frame, size: tuple[int, int]) -> Tensor:
    """One decoded frame -> (1,3,h,w) float32 in [0,1]: resized when ``size=`` asked for another
    size (or the clip changed resolution midway), else only cropped to even sides."""
    from nst.io.image import resize

    x = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)[None].float().div_(255.0)
    h, w = size
    sh, sw = x.shape[-2:]
    if (sh, sw) != (h, w) and (sh - sh % 2, sw - sw % 2) != (h, w):
        return resize(x, size=(h, w))
    return x[:, :, :h, :w]


def frames_to_tensor(frames: list, size: tuple[int, int]) -> Tensor:
    """Decoded frames as one (N, 3, H, W) batch in [0, 1], each at ``size`` (H, W)."""
    return torch.cat([_frame_tensor(f, size) for f in frames])


def to_frames(av, y: Tensor, sources: list, clock: dict | None = None) -> Iterator:
    """Output frames with their sources' timestamps; ``clock`` ({"rate", "last"}): counted in frames
    of a constant rate instead (AVI, whose muxer takes the time base for the frame rate)."""
    arr = (y.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy())
    for i, src in enumerate(sources):
        frame = av.VideoFrame.from_ndarray(arr[i], format="rgb24")
        if clock is None:
            frame.pts, frame.time_base = src.pts, src.time_base
        else:
            tick = round(float(src.pts * src.time_base) * clock["rate"])
            clock["last"] = max(tick, clock["last"] + 1)  # strictly increasing
            frame.pts, frame.time_base = clock["last"], Fraction(1, clock["rate"])
        yield frame


def iter_frames(src: str | Path, size: int | None = None, limit: int | None = None) -> Iterator[Tensor]:
    """A clip's frames, one (1,3,h,w) float32 tensor in [0,1] at a time (``size``: longer side;
    even sides as process_video makes them), at most ``limit``."""
    src = Path(src)
    av = require_av()
    with open_input(src) as inp:
        info, n = container_info(inp), 0
        h, w = output_size(info.height, info.width, size)
        try:
            for frame in inp.decode(video=0):
                yield frames_to_tensor([frame], (h, w))
                n += 1
                if limit and n >= limit:
                    return
        except av.FFmpegError as e:
            raise NSTError(f"{src}: unreadable after frame {n} ({error_reason(e)})") from e


def write_frames(path: str | Path, frames, rate: int | Fraction = 25, *, times: list[float] | None = None,
                 audio: bool = False, rotation: int = 0, sample_aspect_ratio: Fraction | None = None,
                 codec: str | None = None) -> int:
    """Write (1,3,H,W) [0,1] frames as a clip (atomically): synthetic test and demo clips.

    ``times``: each frame's timestamp in seconds (a variable frame rate), else 1/rate apart;
    ``audio``: a 440 Hz tone as long as the clip; ``codec``: e.g. "png" (lossless, any size, in
    .mkv/.mov) instead of the container's default (H.264 for mp4/mov/mkv, which needs even sides)."""
    av = require_av()
    path = Path(path)
    rate = Fraction(rate)
    codec = codec or CODECS.get(path.suffix.lower(), "libx264")
    n = 0
    with atomic_path(path) as tmp, av.open(str(tmp), "w") as out:
        v = None
        for frame in frames:
            arr = frame[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).contiguous().numpy()
            if v is None:
                v = out.add_stream(codec, rate=rate, options=dict(CODEC_OPTIONS.get(codec, {})))
                v.height, v.width = arr.shape[:2]
                v.pix_fmt = "rgb24" if codec == "png" else "yuv420p"
                if times:  # else PyAV's own time base for the rate (setting 1/rate by hand made
                    v.time_base = Fraction(1, 1000)  # libx264's 84th packet invalid at 640x360)
                    v.codec_context.time_base = v.time_base
                if sample_aspect_ratio:
                    v.codec_context.sample_aspect_ratio = Fraction(sample_aspect_ratio)
                if rotation:
                    v.set_display_rotation(rotation)
                if audio:  # every stream exists before the first packet is written
                    a = out.add_stream("aac", rate=44100)
                    a.layout = "mono"
            f = av.VideoFrame.from_ndarray(arr, format="rgb24")
            f.pts = round(times[n] * 1000) if times else n
            f.time_base = Fraction(1, 1000) if times else 1 / rate
            out.mux(v.encode(f))
            n += 1
        if v is None:
            raise NSTError(f"{path}: no frames to write")
        out.mux(v.encode(None))
        if audio:
            import numpy as np

            seconds = (times[-1] + 1 / float(rate)) if times else n / float(rate)
            total = int(44100 * seconds)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(total) / 44100)).astype(np.float32)[None]
            for k in range(0, total, 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, k:k + 1024]), format="flt",
                                                layout="mono")
                af.sample_rate, af.pts = 44100, k
                out.mux(a.encode(af))
            out.mux(a.encode(None))
    return n
