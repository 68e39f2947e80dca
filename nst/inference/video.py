"""Video in, video out: a network applied to every frame of a clip, streamed through PyAV.

``process_video(src, dst, step)`` decodes ``src`` a few frames at a time, runs ``step`` on each
batch ((N,3,H,W) float32 in [0,1] -> (N,3,H',W')) and encodes the result into ``dst``; memory
stays constant whatever the clip's length. Kept from the source: every frame's timestamp (so the
frame rate, the duration and a variable frame rate), the rotation (display matrix), the pixel
aspect ratio, and the audio stream, copied packet for packet (not re-encoded). The output is
written to a temporary file beside ``dst`` and renamed at the end: an error, Ctrl-C or a kill
leaves no partial file.

Departures a user may notice:
- H.264 and VP9 with 4:2:0 chroma need even sides: an odd width or height loses its last
  column or row (never padded with invented pixels).
- frames are converted to 8-bit RGB for the network (a 10-bit source is encoded back as 8-bit).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch
from torch import Tensor

from nst.errors import NSTError
from nst.io.files import atomic_path

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi")
INSTALL = "pip install 'nst[video]' (or: pip install av)"
# the encoder per output container; each is in PyAV's own FFmpeg build
_CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4"}
_OPTIONS = {"libx264": {"crf": "18", "preset": "medium"},  # visually lossless for stylized frames
            "libvpx-vp9": {"crf": "30", "b:v": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"},
            "mpeg4": {}}


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def require_av():
    """The PyAV module, or a one-line NSTError that says how to install it."""
    try:
        import av
    except ImportError as e:
        raise NSTError(f"video files need PyAV, which is not installed: {INSTALL}") from e
    return av


def _log(line: str) -> None:
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


def _open(src: Path):
    av = require_av()
    if not src.is_file():
        raise NSTError(f"{src}: no such file")
    try:
        container = av.open(str(src))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise NSTError(f"{src}: not a video FFmpeg can read ({_reason(e)})") from e
    fmt = container.format.name or ""
    if fmt == "image2" or fmt.endswith("_pipe"):  # FFmpeg sniffs content: a JPEG named .mp4 is one "frame"
        container.close()
        raise NSTError(f"{src}: not a video, FFmpeg reads it as an image ({fmt})")
    if not container.streams.video:
        kind = "audio only" if container.streams.audio else "no video stream"
        container.close()
        raise NSTError(f"{src}: {kind}, nothing to process")
    return container


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e).splitlines()[0] or type(e).__name__


def _truncated(src: Path, stream) -> None:
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


def _info(container) -> VideoInfo:
    v = container.streams.video[0]
    a = container.streams.audio[0] if container.streams.audio else None
    duration = float(v.duration * v.time_base) if v.duration and v.time_base else (
        container.duration / 1e6 if container.duration else None)
    return VideoInfo(v.codec_context.width, v.codec_context.height, int(v.frames or 0),
                     v.average_rate or v.guessed_rate, duration, v.sample_aspect_ratio or None,
                     a.codec_context.name if a is not None else None)


def probe(src: str | Path) -> VideoInfo:
    with _open(Path(src)) as container:
        return _info(container)


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


class _Progress:
    """One line every few seconds (carriage-returned on a terminal): frames, frames/s, ETA."""

    def __init__(self, name: str, total: int, log: Callable[[str], None] | None) -> None:
        self.name, self.total, self.log = name, total, log
        self.start = self.last = time.perf_counter()
        self.tty = log is None and sys.stderr.isatty()

    def update(self, done: int, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self.last < (0.5 if self.tty else 10.0):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        if self.total:
            left = max(self.total - done, 0) / max(rate, 1e-9)
            line = (f"{self.name}: frame {done}/{self.total} ({100 * done / self.total:.0f} %), "
                    f"{rate:.2f} frames/s, {int(left // 60)} min {int(left % 60):02d} s left")
        else:
            line = f"{self.name}: frame {done}, {rate:.2f} frames/s"
        if self.tty:
            print(f"\r{line}", end="\n" if final else "", file=sys.stderr, flush=True)
        else:
            (self.log or _log)(line)


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


def _frames_to_tensor(frames: list, size: tuple[int, int]) -> Tensor:
    return torch.cat([_frame_tensor(f, size) for f in frames])


def _to_frames(av, y: Tensor, sources: list, clock: dict | None = None) -> Iterator:
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


def process_video(src: str | Path, dst: str | Path, step: Callable[[Tensor], Tensor], *,
                  size: int | None = None, factor: int = 1, batch_size: int = 4,
                  log: Callable[[str], None] | None = None) -> int:
    """Decode ``src``, run ``step`` on batches of frames, encode into ``dst`` (atomically); returns
    the number of frames written. ``factor``: how much larger ``step``'s output is (an upscaler's).
    Bad input raises a one-line NSTError naming the file, and nothing is written."""
    src, dst = Path(src), Path(dst)
    av = require_av()
    if dst.suffix.lower() not in VIDEO_EXTENSIONS:
        raise NSTError(f"{dst}: a video needs a video output ({', '.join(VIDEO_EXTENSIONS)}), "
                       f"for {src}")
    done = 0
    with _open(src) as inp, atomic_path(dst) as tmp:
        info = _info(inp)  # the clip is opened once: no separate probe
        h, w = output_size(info.height, info.width, size, factor)
        # mkv and webm do not count their frames: estimated from the duration
        timed = info.duration and info.rate
        estimate = info.frames or (round(info.duration * float(info.rate)) if timed else 0)
        progress = _Progress(src.name, estimate, log)
        vin = inp.streams.video[0]
        _truncated(src, vin)
        vin.thread_type = "AUTO"
        ain = inp.streams.audio[0] if inp.streams.audio else None
        streams = [vin] + ([ain] if ain is not None else [])
        try:  # the output's own failures (a full disk at the trailer, a muxer error)
            with av.open(str(tmp), "w") as out:
                vout, aout, held_audio, clock = None, None, [], {}
                pending: list = []  # decoded frames not yet processed (at most batch_size)
                fallback_pts = 0

                def setup(first) -> None:
                    nonlocal vout, aout
                    codec = _CODECS[dst.suffix.lower()]
                    rate = info.rate or Fraction(25)
                    vout = out.add_stream(codec, rate=rate, options=dict(_OPTIONS[codec]))
                    vout.width, vout.height = w * factor, h * factor
                    vout.pix_fmt = "yuv420p"
                        # the source's time base when it is fine enough; a coarse one (1/25, as AVI's)
                    # made libx264's delayed packets invalid at 640x360 (PyAV rebases frame pts)
                    fine = vin.time_base and vin.time_base.denominator >= 1000
                    vout.time_base = vin.time_base if fine else Fraction(1, 90000)
                    if codec == "mpeg4":  # AVI: a constant rate (see _to_frames)
                        clock.update(rate=max(1, round(float(rate))), last=-1)
                        vout.time_base = Fraction(1, clock["rate"])
                        vout.codec_context.bit_rate = 8_000_000
                    vout.codec_context.time_base = vout.time_base
                    # the RGB -> YUV conversion is BT.601's: say so, or players assume BT.709 for HD
                    cc = vout.codec_context
                    cc.colorspace = cc.color_primaries = cc.color_trc = 6  # SMPTE 170M (BT.601)
                    if dst.suffix.lower() == ".avi" and getattr(first, "rotation", 0):
                        (log or _log)(f"{dst}: AVI has no rotation field: the clip will play unrotated "
                                      f"(choose .mp4 or .mkv to keep its {first.rotation} degrees)")
                    if dst.suffix.lower() == ".webm" and info.sample_aspect_ratio not in (None, 1):
                        (log or _log)(f"{dst}: WebM keeps no pixel aspect ratio: the clip will play with "
                                      "square pixels (choose .mkv to keep it)")
                    if info.sample_aspect_ratio:
                        vout.codec_context.sample_aspect_ratio = info.sample_aspect_ratio
                    if getattr(first, "rotation", 0):
                        vout.set_display_rotation(first.rotation)
                    if ain is not None:
                        try:
                            aout = out.add_stream_from_template(ain)
                        except (av.FFmpegError, ValueError) as e:
                            raise NSTError(f"{dst}: cannot copy the {info.audio} audio of {src} into a "
                                           f"{dst.suffix} file ({_reason(e)}); choose an .mkv output") from e

                def mux(packets) -> None:
                    try:
                        out.mux(packets)
                    except (av.FFmpegError, OSError) as e:
                        hint = f"; for {info.audio} audio choose an .mkv output" if info.audio else ""
                        raise NSTError(f"{dst}: the muxer refused the output ({_reason(e)}){hint}") from e

                def encode(frame):
                    try:
                        return vout.encode(frame)
                    except av.FFmpegError as e:  # e.g. a time base the encoder does not take
                        raise NSTError(f"{dst}: the {vout.codec_context.name} encoder refused the frames "
                                       f"({_reason(e)})") from e

                def flush() -> None:
                    nonlocal done
                    if not pending:
                        return
                    y = step(_frames_to_tensor(pending, (h, w)))
                    if tuple(y.shape[-2:]) != (h * factor, w * factor):
                        raise NSTError(f"{src}: the network returned {tuple(y.shape[-2:])} frames for "
                                       f"{(h, w)} x{factor}")
                    for frame in _to_frames(av, y, pending, clock or None):
                        mux(encode(frame))
                    done += len(pending)
                    pending.clear()
                    progress.update(done)

                try:
                    for packet in inp.demux(streams):
                        if packet.stream is ain:
                            if packet.dts is None:
                                continue  # the demuxer's end-of-stream marker
                            if aout is None:
                                held_audio.append(packet)  # until the first video frame sets up the output
                                continue
                            packet.stream = aout
                            mux(packet)
                            continue
                        for frame in packet.decode():
                            if frame.pts is None:  # no timestamps (some AVI): frames at the nominal rate
                                frame.pts, frame.time_base = fallback_pts, Fraction(1) / (info.rate or 25)
                            fallback_pts += 1
                            if vout is None:
                                setup(frame)
                                for p in held_audio:
                                    p.stream = aout
                                    mux(p)
                                held_audio.clear()
                            pending.append(frame)
                            if len(pending) >= batch_size:
                                flush()
                except av.FFmpegError as e:
                    raise NSTError(f"{src}: unreadable after frame {done + len(pending)} ({_reason(e)}); "
                                   "nothing written") from e
                flush()
                if vout is None:
                    raise NSTError(f"{src}: no video frames, nothing written")
                mux(encode(None))
        except (av.FFmpegError, OSError) as e:
            raise NSTError(f"{dst}: could not be written ({_reason(e)}); nothing written") from e
        progress.update(done, final=True)
    return done


VIDEO_STATS = ("frame", "clip", "scene")


def frame_step(model, video_stats: str = "frame", scene_threshold: float = 0.1) -> Callable[[Tensor], Tensor]:
    """The per-batch function ``process_video`` runs for a Stylizer or an Upscaler (anything with
    ``stylize_tensor``), for one clip.

    ``video_stats`` (instance-norm statistics, style networks only): ``frame``, each frame its own
    (as a photo); ``clip``, the first frame's for every frame; ``scene``, a frame's own when it
    starts a scene (its 64 px thumbnail differs from the previous frame's by more than
    ``scene_threshold`` on average, in [0, 1] units), else those of its scene's first frame.
    Shared statistics are what the tiles of one large image already share; frames normalized alike
    do not pulse in brightness and contrast with their content."""
    if video_stats not in VIDEO_STATS:
        raise NSTError(f"video_stats={video_stats!r}: choose one of {', '.join(VIDEO_STATS)}")
    if video_stats == "frame" or not hasattr(model, "capture_stats"):
        return model.stylize_tensor
    from nst.io.image import resize

    state: dict = {"stats": None, "thumb": None}

    def step(x: Tensor) -> Tensor:
        outs, start = [], 0
        for i in range(x.shape[0]):
            thumb = resize(x[i:i + 1], max_side=64)
            prev = state["thumb"]
            cut = prev is not None and float((thumb - prev).abs().mean()) > scene_threshold
            state["thumb"] = thumb
            if state["stats"] is None or (video_stats == "scene" and cut):
                if i > start:
                    outs.append(model.stylize_tensor(x[start:i], stats=state["stats"]))
                state["stats"], start = model.capture_stats(x[i:i + 1]), i
        outs.append(model.stylize_tensor(x[start:], stats=state["stats"]))
        return torch.cat(outs)

    return step


def iter_frames(src: str | Path, size: int | None = None, limit: int | None = None) -> Iterator[Tensor]:
    """A clip's frames, one (1,3,h,w) float32 tensor in [0,1] at a time (``size``: longer side;
    even sides as process_video makes them), at most ``limit``."""
    src = Path(src)
    av = require_av()
    with _open(src) as inp:
        info, n = _info(inp), 0
        h, w = output_size(info.height, info.width, size)
        try:
            for frame in inp.decode(video=0):
                yield _frames_to_tensor([frame], (h, w))
                n += 1
                if limit and n >= limit:
                    return
        except av.FFmpegError as e:
            raise NSTError(f"{src}: unreadable after frame {n} ({_reason(e)})") from e


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
    codec = codec or _CODECS.get(path.suffix.lower(), "libx264")
    n = 0
    with atomic_path(path) as tmp, av.open(str(tmp), "w") as out:
        v = None
        for frame in frames:
            arr = frame[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).contiguous().numpy()
            if v is None:
                v = out.add_stream(codec, rate=rate, options=dict(_OPTIONS.get(codec, {})))
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
