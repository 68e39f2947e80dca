#!/usr/bin/env python
"""Write a synthetic clip with exact motion from a still photo: a pan (whole pixels per frame) or a
zoom about the centre, optionally with a tone for an audio track. The clips the flicker tests and
docs/video.md use; `nst mode=flicker input=PHOTO` measures the same motion without the codec.

    python scripts/make_clip.py PHOTO OUT.mp4 [--motion pan|zoom] [--frames 125] [--rate 25]
        [--width 480] [--height 320] [--step 2] [--zoom-rate 1.005] [--audio]
"""

from __future__ import annotations

import argparse
import sys

from nst.errors import NSTError
from nst.evaluation import flicker
from nst.io.image import load_image
from nst.io.video import write_frames


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photo")
    p.add_argument("out")
    p.add_argument("--motion", choices=("pan", "zoom"), default="pan")
    p.add_argument("--frames", type=int, default=125)
    p.add_argument("--rate", type=int, default=25)
    p.add_argument("--width", type=int, default=480)
    p.add_argument("--height", type=int, default=320)
    p.add_argument("--step", type=int, default=2, help="px per frame of a pan")
    p.add_argument("--zoom-rate", type=float, default=1.005, help="zoom per frame")
    p.add_argument("--audio", action="store_true", help="add a 440 Hz tone as long as the clip")
    args = p.parse_args(argv)
    try:
        photo = load_image(args.photo)
        frames = flicker.pan(photo, args.frames, args.step, args.width, args.height) if args.motion == "pan" \
            else flicker.zoom(photo, args.frames, args.zoom_rate, args.width, args.height)
        n = write_frames(args.out, frames, args.rate, audio=args.audio)
    except NSTError as e:
        print(f"make_clip: {e}", file=sys.stderr)
        return 2
    print(f"make_clip: {n} frames ({args.motion}) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
