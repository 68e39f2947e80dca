"""nst.hardware: CPU flags, precision=auto and the idle-core count behind threads=auto."""

from __future__ import annotations

import logging
import os

import pytest

from nst import hardware

AMX = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_bf16 amx_tile\n\nprocessor\t: 1\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n"
OLDER = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n"


def test_flags_are_read_from_the_first_processor():
    assert {"amx_bf16", "avx512_bf16"} <= hardware.cpu_flags(AMX)
    assert hardware.cpu_flags("no flags here") == set()


@pytest.mark.parametrize(("cpuinfo", "expected"),
                         [(AMX, "bf16-mixed"), (ZEN4, "bf16-mixed"), (OLDER, "32-true"), ("", "32-true")])
def test_auto_precision_is_bf16_only_with_native_bf16(monkeypatch, caplog, cpuinfo, expected):
    real = hardware.cpu_flags
    monkeypatch.setattr(hardware, "cpu_flags", lambda text=None: real(cpuinfo))
    hardware.cpu_has_fast_bf16.cache_clear()
    try:
        with caplog.at_level(logging.INFO, logger="nst"):
            assert hardware.resolve_precision("auto", "cpu") == expected
    finally:
        hardware.cpu_has_fast_bf16.cache_clear()
    assert "precision=auto: " + expected in caplog.text  # the choice is logged with its reason


def test_explicit_precision_is_kept():
    assert hardware.resolve_precision("32-true", "cpu") == "32-true"
    assert hardware.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"


def test_gpu_auto_is_bf16():
    assert hardware.resolve_precision("auto", "gpu") == "bf16-mixed"


def test_busy_cores_is_a_share_of_the_cores():
    busy = hardware.busy_cores(window=0.05)
    assert busy is None or 0.0 <= busy <= (os.cpu_count() or 1) + 1e-6


@pytest.mark.parametrize(("flags", "kind"), [
    ({"avx2", "avx512f", "avx512_bf16", "amx_bf16"}, "amx"),
    ({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}, "avx512-bf16"),
    ({"avx2", "avx512f"}, "avx512"),
    ({"avx2", "fma"}, "avx2"),
    (set(), "other"),
])
def test_the_machine_kind_is_the_best_matrix_unit_the_flags_name(flags, kind):
    assert hardware.cpu_kind(flags) == kind
