"""Atomic file writes: a reader never sees a half-written file, and a crash never leaves one."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nst.errors import NSTError


def cache_dir() -> Path:
    """$NST_CACHE or ~/.cache/nst, created on demand: converted weights, exported graphs, Gatys runs."""
    d = Path(os.environ.get("NST_CACHE") or Path.home() / ".cache" / "nst").expanduser()
    d.mkdir(parents=True, exist_ok=True)
    return d


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


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi")


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def list_images(spec: str | os.PathLike, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[Path]:
    """A file -> [file]; a folder -> its files with ``extensions`` (any case), recursive, sorted;
    a glob -> its matching files, sorted. Folders skip hidden entries: macOS ``._*`` twins, ``.git``,
    half-written ``.*.tmp.*`` files."""
    s = os.path.expanduser(os.fspath(spec))
    p = Path(s)
    if p.is_file():
        return [p]
    if p.is_dir():
        found = sorted(f for f in p.rglob("*") if f.suffix.lower() in extensions and f.is_file()
                       and not any(part.startswith(".") for part in f.relative_to(p).parts))
        if not found:
            raise NSTError(f"{spec}: no image files ({', '.join(extensions)}) in this folder")
        return found
    if any(c in s for c in "*?["):
        found = sorted(Path(f) for f in glob.glob(s, recursive=True) if os.path.isfile(f))
        if not found:
            raise NSTError(f"{spec}: no files match this pattern")
        return found
    raise NSTError(f"{spec}: no such file or folder")
