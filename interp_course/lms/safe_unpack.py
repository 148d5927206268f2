"""Take files out of a zip as a careful archiver does (``make collect``, which runs as root).

A Canvas download is a zip Canvas made, but what is in it is what students uploaded, under names
they partly chose. So each member is judged on its own, and one that fails is refused alone:

- its name is flat and plain (``name_problem``): no folder, no absolute path, no ``..``, no
  backslash, no NUL or control/format characters (a bidi override reorders a terminal line),
  and not longer than Canvas writes;
- it is a plain file (``member_problem``): not a link, device, fifo or folder by its Unix mode,
  not setuid/setgid, not encrypted, stored or deflated (the methods Canvas uses: bzip2 and
  lzma would decompress a whole read in one step, so their output could not be bounded);
- it is read in chunks and written to a new file of mode 0644 (whatever the archive says), and
  reading stops, the file removed, as soon as it passes the cap on one file, the cap on
  everything taken out of this zip, or a compression ratio no notebook has (``extract``): the
  sizes in the zip's headers are not trusted.

Nothing inside a member is ever opened: an archive a student uploaded stays packed.
"""

from __future__ import annotations

import os
import stat
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass

MiB = 1 << 20
# Longer than any name Canvas writes (a sortable name and a file name of a few hundred characters
# each); also what keeps matching a name cheap.
MAX_NAME = 1024
# Characters no Canvas file name holds: controls, formats (bidi overrides, zero-width), line and
# paragraph separators, surrogates.
_UNPRINTABLE = {"Cc", "Cf", "Zl", "Zp", "Cs"}
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_CHUNK = MiB


@dataclass(frozen=True)
class Limits:
    """How much one zip may put on disk."""

    member: int = 64 * MiB  # one notebook (a notebook with many figures is a few MiB)
    student: int = 128 * MiB  # everything of one student's (so one cannot use up ``total``)
    total: int = 4096 * MiB  # everything taken out of one download
    ratio: int = 200  # uncompressed / compressed, once a file is past ratio_floor
    ratio_floor: int = MiB


class Rejected(Exception):
    """A member not taken out: the message says why."""


class Budget:
    """What one zip has put on disk so far: in all, and by student."""

    def __init__(self, limits: Limits):
        self.limits, self.used, self.by_student = limits, 0, {}


def shown(name: str) -> str:
    """``name`` with the characters a terminal would act on spelled out (``\\x1b``, ``\\u202e``)."""
    return "".join(ascii(c)[1:-1] if unicodedata.category(c) in _UNPRINTABLE else c for c in name)


def member_name(info: zipfile.ZipInfo) -> str:
    """The member's name as Canvas wrote it: UTF-8 (rubyzip writes UTF-8 names without the zip's
    UTF-8 flag, which zipfile then reads as cp437), and uncut at a NUL, unlike ``info.filename``."""
    name = info.orig_filename
    if not info.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("utf-8")
        except UnicodeError:
            pass
    return name


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a flat, plain file name (as every name Canvas writes is); None if it is."""
    if not name:
        return "an empty name"
    if len(name) > MAX_NAME:
        return f"a name of {len(name)} characters (Canvas writes far shorter ones)"
    if "\x00" in name:
        return "a NUL character in its name"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        return "an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "a path with '..' in it"
    if "\\" in name:
        return "a backslash in its name (Canvas replaces \\ / : * ? \" < > | with _)"
    if "/" in name:
        return "a path into a folder of the zip, where Canvas puts nothing"
    if any(unicodedata.category(c) in _UNPRINTABLE for c in name):
        return "control or format characters in its name"
    if name in (".", ".."):
        return "not a file name"
    return None


def member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a member is not a plain, readable file to take out (its name included); None if it is."""
    problem = name_problem(member_name(info))
    if problem:
        return problem
    mode = info.external_attr >> 16  # the Unix mode, where the zip has one
    kind = stat.S_IFMT(mode)
    if kind and kind != stat.S_IFREG:
        what = {stat.S_IFLNK: "a symbolic link", stat.S_IFDIR: "a folder", stat.S_IFCHR: "a device",
                stat.S_IFBLK: "a device", stat.S_IFIFO: "a fifo", stat.S_IFSOCK: "a socket"}.get(kind, "not a file")
        return f"{what} by its mode in the zip, not a plain file"
    if mode & (stat.S_ISUID | stat.S_ISGID):
        return f"mode {stat.S_IMODE(mode):04o} in the zip (setuid/setgid), which no upload has"
    if info.flag_bits & 0x1:
        return "encrypted"
    if info.compress_type not in _METHODS:
        return f"compressed with zip method {info.compress_type}, which Canvas does not use"
    return None


def extract(z: zipfile.ZipFile, info: zipfile.ZipInfo, target: str, budget: Budget, student: str) -> int:
    """Write member ``info`` to the new file ``target`` (0644), in chunks, within the caps; its size.

    Raises ``Rejected`` (and leaves no ``target``) when the member is not a plain file, is damaged,
    or passes a cap; ``budget`` is charged (for ``student``) what stays on disk.
    """
    problem = member_problem(info)
    if problem:
        raise Rejected(problem)
    limits = budget.limits
    theirs = budget.by_student.get(student, 0)
    cap = min(limits.member, limits.student - theirs, limits.total - budget.used)
    compressed = max(info.compress_size, 1)

    def too_big(size: int) -> str | None:
        if size > limits.member:
            return f"larger than the {limits.member // MiB} MiB a notebook may be, uncompressed"
        if size > limits.student - theirs:
            return f"past the {limits.student // MiB} MiB that collect takes of one student's files"
        if size > limits.total - budget.used:
            return (f"past the {limits.total // MiB} MiB that collect takes out of one download "
                    "(the files before it used the rest)")
        if size > limits.ratio_floor and size > limits.ratio * compressed:
            return f"compressed more than {limits.ratio}:1, as no notebook is (a zip bomb?)"
        return None

    problem = too_big(info.file_size)  # what the header claims; what is read is counted below
    if problem:
        raise Rejected(problem)
    written = 0
    try:  # O_EXCL | O_NOFOLLOW: a new file, never one a link points at
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise Rejected(f"could not be written ({error.strerror or error})") from None
    try:
        os.fchmod(fd, 0o644)  # whatever the umask and the archive say
        with os.fdopen(fd, "wb", closefd=False) as out, z.open(info) as member:
            while True:
                chunk = member.read(min(_CHUNK, cap - written + 1))
                if not chunk:
                    break
                written += len(chunk)
                problem = too_big(written)
                if problem:
                    raise Rejected(problem)
                out.write(chunk)
    except Rejected:
        _discard(fd, target)
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as error:
        _discard(fd, target)
        raise Rejected(f"damaged in the zip ({error})") from None
    except OSError as error:
        _discard(fd, target)
        raise Rejected(f"could not be written ({error.strerror or error})") from None
    os.close(fd)
    budget.used += written
    budget.by_student[student] = theirs + written
    return written


def _discard(fd: int, target: str) -> None:
    os.close(fd)
    try:
        os.unlink(target)
    except FileNotFoundError:
        pass
