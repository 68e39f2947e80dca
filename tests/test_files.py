from __future__ import annotations

import os

import pytest

from nst.errors import NSTError
from nst.io.files import atomic_path, atomic_write_text


def test_write_lands_whole(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "hello")
    assert target.read_text() == "hello"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_temp_keeps_the_suffix(tmp_path):
    with atomic_path(tmp_path / "m.safetensors") as tmp:
        assert tmp.suffix == ".safetensors"
        tmp.write_bytes(b"x")


def test_mode_follows_the_umask(tmp_path):
    with atomic_path(tmp_path / "a.txt") as tmp:
        tmp.unlink()  # a writer that recreates the file (safetensors does) must not leave it 0600
        os.close(os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600))
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_unwritable_folder_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(NSTError, match="cannot write"):
        atomic_write_text(blocker / "a.txt", "x")
