"""Blocking file operations of the file-drop protocol, shared by the bridge and the emulator.

Each function is one step of ``docs/drivers/file-drop.md`` and raises ``OSError`` as the OS
does; the callers (run in a worker thread) decide what an error means to them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from drivers.filedrop.naming import MAX_FILE_BYTES, temp_name


def write_atomically(folder: Path, name: str, data: bytes) -> None:
    """Make ``folder/name`` appear whole or not at all, and stay after a power cut.

    Write a temporary file in the same folder, flush and fsync it, rename it to ``name``
    (atomic within one file system), then fsync the folder so the rename itself is durable.
    On failure the temporary file is removed and ``name`` was not created.
    """
    temp = folder / temp_name(name)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_folder(folder)


def fsync_folder(folder: Path) -> None:
    """Make the folder's entries durable (POSIX; Windows has no directory handles for it)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_bounded(path: Path) -> bytes:
    """The file's bytes, at most one more than :data:`MAX_FILE_BYTES` (so the caller sees
    an oversized file as such without reading all of it)."""
    with open(path, "rb") as file:
        return file.read(MAX_FILE_BYTES + 1)


def remove(path: Path) -> bool:
    """Delete ``path``; ``False`` if it was already gone (someone else took or removed it)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def names(folder: Path) -> list[str]:
    """The entries of ``folder``, files only, sorted (oldest ids first within a session)."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_file(follow_symlinks=False))
