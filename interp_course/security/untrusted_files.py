"""Reading a file from a folder that a sandboxed process could write (an outbox, a figure
sandbox's output): never through a link, only a regular file, never more than a limit."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UnsafeFile(Exception):
    pass


def read_regular_file(folder_fd: int, name: str, limit: int) -> bytes:
    """The bytes of ``name`` in an open folder, only if it is a regular file of at most ``limit``."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:  # ELOOP: a symlink
        raise UnsafeFile(f"{name} is not a regular file") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(f"{name} is not a regular file")
        if info.st_size > limit:
            raise UnsafeFile(f"{name} is too large")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:  # it grew after fstat
            raise UnsafeFile(f"{name} is too large")
        return data
    finally:
        os.close(fd)


def open_folder(top: Path, parts: list[str], create: bool = False) -> int:
    """A file descriptor of ``top/parts...``, each component opened without following a link (and
    made, mode 0755, where ``create`` and missing). OSError where one is a link or not a folder."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(top, flags)
    try:
        for part in parts:
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            inner = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = inner
        return fd
    except BaseException:
        os.close(fd)
        raise
