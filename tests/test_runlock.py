"""One training run per output folder (nst/training/runlock.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from nst.errors import NSTError
from nst.training import runlock

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fcntl locks are POSIX")

HOLD = """
import sys, time
from nst.training import runlock
with runlock.hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_run_refuses_naming_the_first(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        busy = rf"another training run is using this folder \(PID {proc.pid} on "
        with pytest.raises(NSTError, match=busy):
            with runlock.hold(tmp_path):
                pass
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_runs_lock_is_taken_over_with_a_note(tmp_path, caplog):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    proc.kill()  # SIGKILL: no chance to release anything
    proc.wait()
    assert json.loads((tmp_path / runlock.NAME).read_text())["pid"] == proc.pid  # left behind
    with runlock.hold(tmp_path) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert f"PID {proc.pid}" in caplog.text and "taking over" in caplog.text


HOLD_AND_FORK = """
import os, sys, time
from nst.training import runlock
with runlock.hold(sys.argv[1]):
    child = os.fork()  # as a DataLoader worker is forked
    if child == 0:
        # fork() returns here only after the at-fork hooks ran in this child: say so
        open(os.path.join(sys.argv[1], "child_running"), "w").close()
        time.sleep(60)
        os._exit(0)
    print(child, flush=True)
    time.sleep(60)
"""


def test_a_killed_runs_forked_workers_do_not_keep_the_lock(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD_AND_FORK, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True)
    child = int(proc.stdout.readline())
    try:
        # a child that has not run yet still holds the inherited descriptor (under load it may be
        # scheduled after the parent's kill): wait until it runs, as a worker does
        deadline = time.monotonic() + 30
        while not (tmp_path / "child_running").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.kill()
        proc.wait()
        os.kill(child, 0)  # the orphaned child still runs ...
        with runlock.hold(tmp_path):  # ... and the folder is free
            pass
    finally:
        os.kill(child, 9)


def test_the_lock_is_released_and_removed_at_the_end(tmp_path):
    with runlock.hold(tmp_path):
        assert (tmp_path / runlock.NAME).is_file()
    assert not (tmp_path / runlock.NAME).exists()
    with runlock.hold(tmp_path):  # and can be taken again
        pass


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with runlock.hold(tmp_path):
            raise RuntimeError("training failed")
    with runlock.hold(tmp_path):
        pass


def test_other_ranks_of_a_distributed_run_take_no_lock(tmp_path, monkeypatch):
    with runlock.hold(tmp_path):
        monkeypatch.setenv("LOCAL_RANK", "1")
        with runlock.hold(tmp_path) as path:  # rank 1 of the same run: no refusal
            assert path is None


def test_two_mode_train_runs_into_one_folder(tmp_path):
    """The CLI: the second run's one line and exit 2 while the first holds the folder."""
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        cmd = [sys.executable, "-m", "nst", "mode=train", f"output={out}", "vgg.weights=random",
               "logger=none"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert f"PID {proc.pid}" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    finally:
        proc.kill()
        proc.wait()
