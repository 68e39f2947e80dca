"""Atomic file writes: a reader never sees a half-written file, and a crash never leaves one."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nst.errors import NSTError


def _why(folder: Path, e: OSError) -> str:
    """Why ``folder`` cannot be made: name the ancestor that is a file (mkdir alone says only
    'File exists' or 'Not a directory'), else the OS's reason."""
    for p in (*reversed(folder.parents), folder):
        if p.exists() and not p.is_dir():
            return f"{p} is a file, not a folder"
    return e.strerror or str(e)


def ensure_folder(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` (and its parents) now, so that a run fails before its work, not after."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NSTError(f"{path}: cannot create this output folder ({_why(path, e)})") from e
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    The temporary file lives in the destination folder (same file system, so ``os.replace`` is
    atomic) and keeps the destination's suffix, so writers that choose a format by extension
    (PIL, safetensors, ONNX) still do. On any error the temporary file is removed and ``path`` is
    left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    except OSError as e:
        raise NSTError(f"{path}: cannot write there ({_why(path.parent, e)})") from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file 0600 (and some writers, safetensors among them, recreate it so);
        # give the result the mode a plain open() would: 0666 minus the umask.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


_FULL = (errno.ENOSPC, errno.EDQUOT)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically. A full disk (or quota) is one NSTError that says how
    much space the file needed and how much was free; ``path`` keeps its previous content."""
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as e:
        if e.errno not in _FULL:
            raise NSTError(f"{path}: could not be written ({e.strerror or e})") from e
        try:
            free = f"{shutil.disk_usage(Path(path).parent).free / 2**20:.1f} MB free"
        except OSError:
            free = "free space unknown"
        need = f"{len(data) / 2**20:.1f} MB"
        raise NSTError(f"{path}: could not be written, the disk is full (it needs {need}, {free}); "
                       "the previous file, if any, is unchanged") from e


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def file_digest(path: str | os.PathLike) -> str:
    """The first 16 hex digits of ``path``'s SHA-256: tells two files of the same name apart."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
