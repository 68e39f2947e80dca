"""Video in, video out: a function applied to every frame of a clip, streamed through PyAV.

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
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from torch import Tensor

from nst.errors import NSTError
from nst.io.files import atomic_path
from nst.io.video import (
    CODEC_OPTIONS,
    CODECS,
    VIDEO_EXTENSIONS,
    check_truncated,
    container_info,
    error_reason,
    frames_to_tensor,
    log_line,
    open_input,
    output_size,
    require_av,
    to_frames,
)


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
            (self.log or log_line)(line)


class _Transcode:
    """One clip's output: the streams set up at the first video frame (so audio packets that come
    before it wait), the frames batched through ``step``, every packet muxed with one-line errors."""

    def __init__(self, av, src: Path, dst: Path, out, info, vin, ain, step: Callable[[Tensor], Tensor],
                 size: tuple[int, int], factor: int, batch_size: int, progress: _Progress,
                 log: Callable[[str], None] | None) -> None:
        self.av, self.src, self.dst, self.out, self.info = av, src, dst, out, info
        self.vin, self.ain, self.step, self.size, self.factor = vin, ain, step, size, factor
        self.batch_size, self.progress, self.log = batch_size, progress, log or log_line
        self.vout = self.aout = None
        self.held_audio: list = []  # audio packets before the first video frame
        self.pending: list = []  # decoded frames not yet processed (at most batch_size)
        self.clock: dict = {}
        self.done = 0

    def setup(self, first) -> None:
        """The output streams, from the clip's first decoded frame (its rotation) and its info."""
        info, dst, vin = self.info, self.dst, self.vin
        codec = CODECS[dst.suffix.lower()]
        rate = info.rate or Fraction(25)
        vout = self.vout = self.out.add_stream(codec, rate=rate, options=dict(CODEC_OPTIONS[codec]))
        h, w = self.size
        vout.width, vout.height = w * self.factor, h * self.factor
        vout.pix_fmt = "yuv420p"
        # the source's time base when it is fine enough; a coarse one (1/25, as AVI's)
        # made libx264's delayed packets invalid (PyAV rebases frame pts)
        fine = vin.time_base and vin.time_base.denominator >= 1000
        vout.time_base = vin.time_base if fine else Fraction(1, 90000)
        if codec == "mpeg4":  # AVI: a constant rate (see to_frames)
            self.clock.update(rate=max(1, round(float(rate))), last=-1)
            vout.time_base = Fraction(1, self.clock["rate"])
            vout.codec_context.bit_rate = 8_000_000
        vout.codec_context.time_base = vout.time_base
        # the RGB -> YUV conversion is BT.601's: say so, or players assume BT.709 for HD
        cc = vout.codec_context
        cc.colorspace = cc.color_primaries = cc.color_trc = 6  # SMPTE 170M (BT.601)
        if dst.suffix.lower() == ".avi" and getattr(first, "rotation", 0):
            self.log(f"{dst}: AVI has no rotation field: the clip will play unrotated "
                     f"(choose .mp4 or .mkv to keep its {first.rotation} degrees)")
        if dst.suffix.lower() == ".webm" and info.sample_aspect_ratio not in (None, 1):
            self.log(f"{dst}: WebM keeps no pixel aspect ratio: the clip will play with "
                     "square pixels (choose .mkv to keep it)")
        if info.sample_aspect_ratio:
            vout.codec_context.sample_aspect_ratio = info.sample_aspect_ratio
        if getattr(first, "rotation", 0):
            vout.set_display_rotation(first.rotation)
        if self.ain is not None:
            try:
                self.aout = self.out.add_stream_from_template(self.ain)
            except (self.av.FFmpegError, ValueError) as e:
                raise NSTError(f"{dst}: cannot copy the {info.audio} audio of {self.src} into a "
                               f"{dst.suffix} file ({error_reason(e)}); choose an .mkv output") from e
        for packet in self.held_audio:
            self.audio(packet)
        self.held_audio.clear()

    def mux(self, packets) -> None:
        try:
            self.out.mux(packets)
        except (self.av.FFmpegError, OSError) as e:
            hint = f"; for {self.info.audio} audio choose an .mkv output" if self.info.audio else ""
            raise NSTError(f"{self.dst}: the muxer refused the output ({error_reason(e)}){hint}") from e

    def encode(self, frame):
        try:
            return self.vout.encode(frame)
        except self.av.FFmpegError as e:  # e.g. a time base the encoder does not take
            raise NSTError(f"{self.dst}: the {self.vout.codec_context.name} encoder refused the frames "
                           f"({error_reason(e)})") from e

    def audio(self, packet) -> None:
        """An audio packet, copied as it is (held until the first video frame sets up the output)."""
        if self.aout is None:
            self.held_audio.append(packet)
            return
        packet.stream = self.aout
        self.mux(packet)

    def frame(self, frame) -> None:
        if self.vout is None:
            self.setup(frame)
        self.pending.append(frame)
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """The pending frames through ``step``, encoded with their sources' timestamps."""
        if not self.pending:
            return
        (h, w), f = self.size, self.factor
        y = self.step(frames_to_tensor(self.pending, (h, w)))
        if tuple(y.shape[-2:]) != (h * f, w * f):
            raise NSTError(f"{self.src}: the network returned {tuple(y.shape[-2:])} frames for {(h, w)} x{f}")
        for frame in to_frames(self.av, y, self.pending, self.clock or None):
            self.mux(self.encode(frame))
        self.done += len(self.pending)
        self.pending.clear()
        self.progress.update(self.done)

    def run(self, inp, streams) -> None:
        fallback_pts = 0
        try:
            for packet in inp.demux(streams):
                if packet.stream is self.ain:
                    if packet.dts is not None:  # None: the demuxer's end-of-stream marker
                        self.audio(packet)
                    continue
                for frame in packet.decode():
                    if frame.pts is None:  # no timestamps (some AVI): frames at the nominal rate
                        frame.pts, frame.time_base = fallback_pts, Fraction(1) / (self.info.rate or 25)
                    fallback_pts += 1
                    self.frame(frame)
        except self.av.FFmpegError as e:
            raise NSTError(f"{self.src}: unreadable after frame {self.done + len(self.pending)} "
                           f"({error_reason(e)}); nothing written") from e
        self.flush()
        if self.vout is None:
            raise NSTError(f"{self.src}: no video frames, nothing written")
        self.mux(self.encode(None))


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
    with open_input(src) as inp, atomic_path(dst) as tmp:
        info = container_info(inp)  # the clip is opened once: no separate probe
        h, w = output_size(info.height, info.width, size, factor)
        # mkv and webm do not count their frames: estimated from the duration
        timed = info.duration and info.rate
        estimate = info.frames or (round(info.duration * float(info.rate)) if timed else 0)
        progress = _Progress(src.name, estimate, log)
        vin = inp.streams.video[0]
        check_truncated(src, vin)
        vin.thread_type = "AUTO"
        ain = inp.streams.audio[0] if inp.streams.audio else None
        try:  # the output's own failures (a full disk at the trailer, a muxer error)
            with av.open(str(tmp), "w") as out:
                job = _Transcode(av, src, dst, out, info, vin, ain, step, (h, w), factor, batch_size,
                                 progress, log)
                job.run(inp, [vin] + ([ain] if ain is not None else []))
        except (av.FFmpegError, OSError) as e:
            raise NSTError(f"{dst}: could not be written ({error_reason(e)}); nothing written") from e
        progress.update(job.done, final=True)
    return job.done
