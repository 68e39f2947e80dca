"""What the machine offers: whether this CPU runs bf16 matrix work fast, and the precision to pick.

AMX-BF16 (Intel Sapphire Rapids and later) and AVX512-BF16 (AMD Zen 4, Intel Cooper Lake) count:
on both, oneDNN's bf16 convolutions train faster than float32, on AVX512-BF16 since the instance
norm is torch's fused ``F.instance_norm`` rather than float32 ops around every block
(docs/benchmarks.md). Elsewhere bf16 is emulated and slower, so ``precision=auto`` picks float32.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform
import time
from pathlib import Path

log = logging.getLogger("nst")

BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The ``flags`` of the first processor in /proc/cpuinfo (empty where there is none)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")


def cpu_kind(flags: set[str] | None = None) -> str:
    """The machine kind figures are grouped by: ``amx`` (AMX-BF16), ``avx512-bf16`` (native bf16
    without AMX), ``avx512`` or ``avx2`` (no native bf16), ``other``."""
    flags = cpu_flags() if flags is None else flags
    for kind, flag in (("amx", "amx_bf16"), ("avx512-bf16", "avx512_bf16"), ("avx512", "avx512f"),
                       ("avx2", "avx2")):
        if flag in flags:
            return kind
    return "other"


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True when this CPU has native bf16 matrix instructions (see BF16_FLAGS)."""
    return bool(cpu_flags() & set(BF16_FLAGS))


def resolve_precision(precision: str, accelerator: str = "cpu") -> str:
    """``auto`` -> ``bf16-mixed`` on a CPU with native bf16 (or any GPU), else ``32-true``; any
    other value is returned as it is. The choice is logged, with the reason."""
    if str(precision) != "auto":
        return str(precision)
    if accelerator not in ("cpu",):
        chosen, why = "bf16-mixed", f"accelerator {accelerator}"
    elif cpu_has_fast_bf16():
        found = sorted(cpu_flags() & set(BF16_FLAGS))
        chosen, why = "bf16-mixed", f"this CPU has {', '.join(found)}"
    else:
        chosen, why = "32-true", "this CPU has neither AMX-BF16 nor AVX512-BF16, where bf16 is emulated"
    log.info("precision=auto: %s (%s)", chosen, why)
    return chosen


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None where there is none."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except (OSError, IndexError):
        return None
    values = [int(v) for v in fields[:8]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_cores(window: float = 0.3) -> float | None:
    """How many cores other processes keep busy now, sampled over ``window`` seconds (None where
    /proc/stat is missing). Not the 1-minute load average: that still counts, for a minute, the
    set-up or the previous job that just ended, and so took one of two idle cores away."""
    first = _cpu_times()
    if first is None:
        return None
    time.sleep(window)
    second = _cpu_times()
    if second is None or second[1] <= first[1]:
        return None
    return (second[0] - first[0]) / (second[1] - first[1]) * (os.cpu_count() or 1)


def describe(device) -> str:
    """The device in words, for reports: the GPU's name, or the CPU model and its core count."""
    if device.type == "cuda":
        import torch  # only here: the rest of this module is read before torch is needed

        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError, StopIteration):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
        return f"{name} ({os.cpu_count()} cores)"
    return f"{platform.processor() or 'cpu'} ({os.cpu_count()} cores)"
