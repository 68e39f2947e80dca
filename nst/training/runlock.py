"""One training run per output folder: ``<output>/.nst-train.lock``, held while a run trains.

The lock is an ``flock`` on that file (the kernel drops it when the process dies, however it
dies), and the file says who holds it: PID, host and start time, so a second run into the same
folder refuses in one line naming them. A file left by a killed run is no longer locked: the next
run takes it over and says so. Only the first process of a distributed run (rank 0) takes it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from nst.errors import NSTError

log = logging.getLogger("nst")
NAME = ".nst-train.lock"
_HELD: set[int] = set()  # lock descriptors this process holds


def _forget_in_child() -> None:
    # A forked child (a DataLoader worker) shares the parent's open lock: flock belongs to the open
    # file, which stays locked while any process has it open. Workers orphaned by a SIGKILLed run
    # would then keep the folder locked until they noticed; the child closes its copies at once.
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def _rank_zero() -> bool:
    """Whether this process is the first of its run (torchrun's RANK; Lightning's LOCAL_RANK, NODE_RANK)."""
    return all(int(os.environ.get(k, "0") or 0) == 0 for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def _holder(text: str) -> dict:
    try:
        info = json.loads(text)
        return info if isinstance(info, dict) else {}
    except ValueError:
        return {}


def _describe(info: dict) -> str:
    if not info:
        return "a process that left no details"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["start"])) if "start" in info else "?"
    return f"PID {info.get('pid', '?')} on {info.get('host', '?')}, started {when}"


@contextlib.contextmanager
def hold(folder: str | os.PathLike) -> Iterator[Path | None]:
    """Hold the folder's training lock for the ``with`` block (creating the folder, and removing it
    again if it is still empty at the end); NSTError when another live run holds it."""
    if not _rank_zero() or sys.platform == "win32":  # fcntl is POSIX; other ranks belong to rank 0's run
        yield None
        return
    import fcntl

    from nst.io.files import ensure_folder

    made = not Path(folder).exists()
    path = ensure_folder(folder) / NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise NSTError(f"{path}: cannot create the run's lock file ({e.strerror})") from e
    try:
        _HELD.add(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            info = _holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
            raise NSTError(f"output={folder}: another training run is using this folder ({_describe(info)}); "
                           "wait for it to end or choose another output=") from None
        stale = _holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        if stale:
            log.warning("%s: taking over the lock of a run that ended without releasing it (%s)",
                        path, _describe(stale))
        me = {"pid": os.getpid(), "host": socket.gethostname(), "start": time.time(), "argv": sys.argv}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        try:
            yield path
        finally:
            # empty the file before unlocking: a waiting run then finds no stale holder to report
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                path.unlink()
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        _HELD.discard(fd)
        os.close(fd)
        if made:  # a run that failed before writing anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                Path(folder).rmdir()
