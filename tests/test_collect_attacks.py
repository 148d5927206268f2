"""`python -m interp_course collect` (as root, as `make collect` runs) against downloads a student shaped.

Issue 28: a student controls what they upload to Canvas (its bytes, its file name) and, where the
institution lets them, their display name, which Canvas writes into the download's file names.
Each test builds a small Canvas-shaped download holding one attack beside honest hand-ins, runs
the real command, and checks what a careful archiver guarantees:

- nothing setuid or setgid anywhere under the course root (walked with ``os.lstat``);
- nothing new outside ``submitted/`` (in the course or beside it), and nothing but the expected
  notebooks in it, each written 0644;
- no other student's folder touched: the honest students collected with their own bytes;
- the bad upload named in the closing NOT COLLECTED lines, with exit status 3.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import tarfile
import zipfile
from pathlib import Path

from conftest import make_course
from test_collect_command import BLANK, FULL_MARKS, ROSTER, collect

HONEST = {"doejane_1234_5678_puzzle1.ipynb": FULL_MARKS, "leekim_3456_6790_puzzle1.ipynb": BLANK}
COLLECTED = {"jdoe/puzzle1/puzzle1.ipynb": FULL_MARKS, "klee/puzzle1/puzzle1.ipynb": BLANK}
MiB = 1 << 20


def unix_member(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
    info.create_system = 3
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def zip_bytes(members: dict) -> bytes:
    """A zip of {name or ZipInfo: bytes}."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def zeros_member(z: zipfile.ZipFile, name: str, size: int) -> None:
    """A member of ``size`` zero bytes, written in chunks (a bomb without holding it in memory)."""
    info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    chunk = bytes(MiB)
    with z.open(info, "w", force_zip64=True) as f:
        for _ in range(size // MiB):
            f.write(chunk)


def tree(root: Path) -> dict[str, os.stat_result]:
    """Every path under ``root`` (not following links), by its path relative to ``root``."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = os.lstat(path)
    return found


def run_attack(tmp_path: Path, members, roster: str = ROSTER, edit=None):
    """Collect a download of ``members`` ({name or ZipInfo: bytes}, or a function writing them to
    a ZipFile; ``edit``ed, if given, once written) into a fresh course; (course, result, new
    paths under tmp_path)."""
    course = make_course(tmp_path / "course")
    download, roster_path = tmp_path / "submissions.zip", tmp_path / "roster.csv"
    download.write_bytes(zip_bytes(members) if not callable(members) else b"")
    if callable(members):
        with zipfile.ZipFile(download, "w", zipfile.ZIP_DEFLATED) as z:
            members(z)
    if edit:
        edit(download)
    roster_path.write_text(roster)
    before = tree(tmp_path)
    result = collect(course, download, roster_path)
    after = tree(tmp_path)
    return course, result, {p: s for p, s in after.items() if p not in before}


def check_safe(course: Path, result, new: dict, collected: dict[str, bytes], named: list[str]) -> list[str]:
    """The guarantees above; the closing NOT COLLECTED lines."""
    output = result.stdout[-3000:] + result.stderr[-3000:]
    for path, info in tree(course).items():
        assert not info.st_mode & (stat.S_ISUID | stat.S_ISGID), f"{path} is {stat.filemode(info.st_mode)}"
    # Everything new is under course/submitted/ (a download's own working folder is not kept).
    strays = [p for p in new if not p.startswith(os.path.join("course", "submitted"))]
    assert not strays, f"new paths outside submitted/: {strays}\n{output}"
    submitted = tree(course / "submitted")
    files = {p: s for p, s in submitted.items() if stat.S_ISREG(s.st_mode)}
    others = [p for p, s in submitted.items() if not stat.S_ISREG(s.st_mode) and not stat.S_ISDIR(s.st_mode)]
    assert not others, others
    assert sorted(files) == sorted(collected), output
    for path, data in collected.items():
        assert (course / "submitted" / path).read_bytes() == data, path
        assert stat.S_IMODE(files[path].st_mode) == 0o644, f"{path}: {stat.filemode(files[path].st_mode)}"
    assert result.returncode == 3, output
    lines = result.stdout.splitlines()
    closing = next((lines[i + 1:] for i, line in enumerate(lines) if line.startswith("NOT COLLECTED:")), None)
    assert closing is not None, output
    for name in named:
        assert any(line.startswith(f"  {name}: ") for line in closing), f"{name!r} not named:\n{output}"
    return closing


def test_row1_an_archive_with_a_setuid_member_is_not_unpacked(tmp_path):
    # A zip and a tar.gz whose member is mode 04755 (setuid root once unpacked as root), and a
    # member of mode 02755 straight in the download (no Canvas download has one).
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w:gz") as t:
        member = tarfile.TarInfo("rootshell")
        member.mode, member.size = 0o4755, 4
        t.addfile(member, io.BytesIO(b"\x7fELF"))
    members = {**HONEST,
               "roesmith_2345_6789_puzzle1.zip": zip_bytes({unix_member("rootshell", 0o104755): b"\x7fELF"}),
               "roesmith_2345_6790_puzzle1.tar.gz": tar.getvalue(),
               unix_member("gonegone_2345_6791_puzzle1.ipynb", 0o102755): BLANK}
    course, result, new = run_attack(tmp_path, members)
    closing = check_safe(course, result, new, COLLECTED, [
        "roesmith_2345_6789_puzzle1.zip", "roesmith_2345_6790_puzzle1.tar.gz", "gonegone_2345_6791_puzzle1.ipynb"])
    assert any("archive" in line for line in closing if "6789" in line), closing
    assert any("setgid" in line for line in closing if "6791" in line), closing
    assert "Collected 2 notebooks of 2 students" in result.stdout


def test_row2_a_notebook_inside_an_upload_is_never_another_students_hand_in(tmp_path):
    # rsmith's upload is a zip holding a notebook named as Canvas would name jdoe's.
    members = {**HONEST, "roesmith_2345_6789_puzzle1.zip": zip_bytes({"doejane_1234_1_puzzle1.ipynb": BLANK})}
    course, result, new = run_attack(tmp_path, members)
    check_safe(course, result, new, COLLECTED, ["roesmith_2345_6789_puzzle1.zip"])
    assert "Collected 2 notebooks of 2 students" in result.stdout


def test_row3_a_display_name_cannot_shift_the_user_id(tmp_path):
    # rsmith (Canvas user 2345) named themself "x_1234_1": Canvas writes x_1234_1_2345_100_...
    # A file name can carry the same pattern: rsmith uploads "a_1234_7_puzzle1.ipynb".
    members = {**HONEST, "x_1234_1_2345_100_puzzle1.ipynb": BLANK, "roesmith_2345_101_a_1234_7_puzzle1.ipynb": BLANK}
    course, result, new = run_attack(tmp_path, members)
    closing = check_safe(course, result, new, COLLECTED,
                         ["x_1234_1_2345_100_puzzle1.ipynb", "roesmith_2345_101_a_1234_7_puzzle1.ipynb"])
    assert all("ambiguous" in line for line in closing if "_1234_" in line), closing


def test_row3_a_display_name_cannot_shift_the_user_id_to_the_only_user_of_a_stale_roster(tmp_path):
    # The same name, rsmith missing from the roster: its one split to a roster user is jdoe's.
    stale = "".join(line + "\n" for line in ROSTER.splitlines() if "2345" not in line)
    course, result, new = run_attack(tmp_path, {**HONEST, "x_1234_1_2345_100_puzzle1.ipynb": BLANK}, roster=stale)
    closing = check_safe(course, result, new, COLLECTED, ["x_1234_1_2345_100_puzzle1.ipynb"])
    assert all("ambiguous" in line for line in closing if "_1234_" in line), closing


def test_row4_a_bad_name_rejects_only_that_upload(tmp_path):
    members = {**HONEST,
               "roesmith_2345_6789_puzzle1.zip": zip_bytes({"../../x": b"escaped", "/tmp/abs": b"escaped"}),
               "roesmith_2345_6790_..\\..\\puzzle1.ipynb": BLANK,
               "roesmith_2345_6791_puzzle1\x1b[2J.ipynb": BLANK,
               "../../roesmith_2345_6792_puzzle1.ipynb": BLANK,
               "/tmp/roesmith_2345_6793_puzzle1.ipynb": BLANK,
               "roesmith_2345_6794_puzzle1\u202eknyp.ipynb": BLANK}
    course, result, new = run_attack(tmp_path, members)
    check_safe(course, result, new, COLLECTED, [
        "roesmith_2345_6789_puzzle1.zip", "roesmith_2345_6790_..\\..\\puzzle1.ipynb",
        "roesmith_2345_6791_puzzle1\\x1b[2J.ipynb",  # printed inert, its controls spelled out
        "../../roesmith_2345_6792_puzzle1.ipynb", "/tmp/roesmith_2345_6793_puzzle1.ipynb",
        "roesmith_2345_6794_puzzle1\\u202eknyp.ipynb"])
    assert "Collected 2 notebooks of 2 students" in result.stdout
    assert not (tmp_path / "x").exists() and not Path("/tmp/abs").exists()


def understate(download: Path, name: str, size: int) -> None:
    """Make the central directory say member ``name`` is ``size`` bytes uncompressed."""
    with zipfile.ZipFile(download) as z:
        at = z.start_dir
    data = bytearray(download.read_bytes())
    while data[at:at + 4] == b"PK\x01\x02":
        lengths = struct.unpack_from("<HHH", data, at + 28)  # name, extra field, comment
        if data[at + 46:at + 46 + lengths[0]] == name.encode():
            struct.pack_into("<I", data, at + 24, size)
            download.write_bytes(bytes(data))
            return
        at += 46 + sum(lengths)
    raise AssertionError(f"no member {name}")


def test_row5_a_bomb_is_stopped_at_the_cap(tmp_path):
    def members(z: zipfile.ZipFile) -> None:
        for name, data in HONEST.items():
            z.writestr(name, data)
        # Notebook-named members of zeros: 256 MiB (~250 KB in the download: past the 64 MiB a
        # notebook may be), 8 MiB (past the compression ratio of any notebook), and 8 MiB whose
        # header claims 1000 bytes; and a nested zip bomb (a zip of a 64 MiB member, zipped).
        zeros_member(z, "roesmith_2345_6789_puzzle1.ipynb", 256 * MiB)
        zeros_member(z, "roesmith_2345_6788_puzzle1-1.ipynb", 8 * MiB)
        z.writestr("roesmith_2345_6787_puzzle1-2.ipynb", bytes(8 * MiB))
        inner = io.BytesIO()
        with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as bomb:
            zeros_member(bomb, "puzzle1.ipynb", 64 * MiB)
        z.writestr("gonegone_2345_6790_work.zip", inner.getvalue())

    course, result, new = run_attack(tmp_path, members, edit=lambda download: understate(
        download, "roesmith_2345_6787_puzzle1-2.ipynb", 1000))
    closing = check_safe(course, result, new, COLLECTED, [
        "roesmith_2345_6789_puzzle1.ipynb", "roesmith_2345_6788_puzzle1-1.ipynb", "roesmith_2345_6787_puzzle1-2.ipynb",
        "gonegone_2345_6790_work.zip"])
    reasons = "\n".join(closing)
    assert "6789_puzzle1.ipynb: larger than the 64 MiB" in reasons
    assert "6788_puzzle1-1.ipynb: compressed more than 200:1" in reasons
    assert "6787_puzzle1-2.ipynb: damaged in the zip" in reasons
    on_disk = sum(s.st_size for s in new.values() if stat.S_ISREG(s.st_mode))
    assert on_disk < MiB, on_disk
    assert not (course / "submitted" / "rsmith").exists()
