"""Load and speed of ``nst mode=serve`` (docs/serve.md): figures for docs/results, not a test.

    python scripts/bench/serve_load.py [--clients 20] [--seconds 60] [--model starry_night]
        [--photo nst/assets/samples/kodim07.jpg] [--speed-side 1024] [--json out.json]

1. **Load**: starts ``nst mode=serve`` in its own process on a free loopback port, then ``--clients``
   threads each POST the photo to /api/stylize in a loop for ``--seconds``. Reports the count of
   each status, p50/p95/max latency of the 200s, and the server's resident memory (VmRSS) sampled
   every second: after the warm-up (the first tenth of the run) against the end.
2. **Speed**: in this process, ``nst.load_model(model)(image)`` on a ``--speed-side`` px photo
   against the same photo through the API of an in-process server (multipart upload, decoding,
   PNG encoding and loopback HTTP included); medians of ``--repeats`` after one warm-up each.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_up(url: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if httpx.get(url + "api/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server at {url} did not come up in {timeout:.0f} s")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def load(args) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    cmd = [sys.executable, "-m", "nst", "mode=serve", f"port={port}", f"queue={args.queue}"]
    server = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_up(url)
        photo = Path(args.photo).read_bytes()
        stop = time.monotonic() + args.seconds
        statuses: Counter = Counter()
        latencies: list[float] = []
        lock = threading.Lock()

        def client() -> None:
            with httpx.Client(base_url=url, timeout=300) as c:
                while time.monotonic() < stop:
                    start = time.perf_counter()
                    try:
                        r = c.post("api/stylize", files={"image": ("photo.jpg", photo, "image/jpeg")},
                                   data={"model": args.model})
                        code = r.status_code
                    except httpx.HTTPError as e:
                        code = type(e).__name__
                    took = time.perf_counter() - start
                    with lock:
                        statuses[code] += 1
                        if code == 200:
                            latencies.append(took)
                    if code == 503:
                        time.sleep(0.2)  # a client that is told "busy" waits a little

        memory: list[tuple[float, float]] = []
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            memory.append((time.monotonic() - t0, rss_mib(server.pid)))
            time.sleep(1.0)
        for t in threads:
            t.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    warm = [m for s, m in memory if s >= args.seconds / 10]
    return {"clients": args.clients, "seconds": args.seconds, "queue": args.queue,
            "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
            "server_errors": sum(v for k, v in statuses.items() if not (isinstance(k, int) and k < 500)
                                 and k != 503),
            "p50_s": pct(latencies, 0.50), "p95_s": pct(latencies, 0.95),
            "max_s": max(latencies, default=float("nan")),
            "throughput_per_s": len(latencies) / args.seconds,
            "rss_mib_after_warmup": warm[0] if warm else None, "rss_mib_end": warm[-1] if warm else None,
            "rss_mib_max": max(warm) if warm else None}


def speed(args) -> dict:
    import torch
    import uvicorn

    import nst
    from nst.io.image import load_image, resize, to_pil
    from nst.serve.app import Settings, create_app

    img = resize(load_image(args.photo), max_side=args.speed_side)
    buf = io.BytesIO()
    to_pil(img).save(buf, "PNG")
    data = buf.getvalue()
    model = nst.load_model(args.model)

    def direct() -> float:
        start = time.perf_counter()
        model(img)
        return time.perf_counter() - start

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(Settings(port=port)), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/"
    wait_up(url)
    with httpx.Client(base_url=url, timeout=300) as c:
        def api() -> float:
            start = time.perf_counter()
            r = c.post("api/stylize", files={"image": ("p.png", data, "image/png")},
                       data={"model": args.model})
            assert r.status_code == 200, r.text
            return time.perf_counter() - start

        direct(), api()  # warm-ups: the model loads and exports once
        times = {"direct": [], "api": []}
        for _ in range(args.repeats):  # alternate, so both see the same machine
            times["direct"].append(direct())
            times["api"].append(api())
    server.should_exit = True
    thread.join(timeout=10)
    d, a = statistics.median(times["direct"]), statistics.median(times["api"])
    return {"side": args.speed_side, "size": list(img.shape[-2:]), "direct_s": d, "api_s": a, "ratio": a / d,
            "threads": torch.get_num_threads(), "repeats": args.repeats}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--queue", type=int, default=8)
    ap.add_argument("--model", default="starry_night")
    ap.add_argument("--photo", default=str(REPO / "nst" / "assets" / "samples" / "kodim07.jpg"))
    ap.add_argument("--speed-side", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", choices=["load", "speed"], default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    out = {"cpu": next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                        if ln.startswith("model name")), "?"), "load_average": os.getloadavg()}
    if args.only in (None, "load"):
        out["load"] = load(args)
    if args.only in (None, "speed"):
        out["speed"] = speed(args)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
