"""Taking files out of a Canvas download carefully (``interp_course.lms.safe_unpack``), and reading
Canvas file names whose display name or file name holds ``_<digits>_<digits>_`` (``canvas_collect.splits``)."""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from interp_course.lms import canvas_collect, safe_unpack
from interp_course.course import Course
from interp_course.lms.canvas_collect import Entry, plan, splits
from interp_course.lms.safe_unpack import Budget, Limits, Rejected, extract, member_problem, name_problem

KiB, MiB = 1 << 10, 1 << 20
ROSTER = {"1234": "jdoe", "2345": "rsmith", "3456": "klee"}


def info(name: str, mode: int = 0o100644, **fields) -> zipfile.ZipInfo:
    member = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
    member.create_system, member.external_attr, member.compress_type = 3, mode << 16, zipfile.ZIP_DEFLATED
    for key, value in fields.items():
        setattr(member, key, value)
    return member


def one_member_zip(path: Path, member: zipfile.ZipInfo, data: bytes) -> zipfile.ZipFile:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member, data)
    return zipfile.ZipFile(path)


@pytest.mark.parametrize("name, problem", [
    ("doejane_1234_5678_puzzle1.ipynb", None),
    ("müllerjörg_1234_5678_puzzle1 (1).ipynb", None),
    ("", "empty"),
    ("a" * 2000, "2000 characters"),
    ("doejane_1234_5678_puzzle1.ipynb\x00../x", "NUL"),
    ("/etc/cron.d/x", "absolute"),
    ("C:\\x.ipynb", "absolute"),
    ("\\\\server\\x.ipynb", "absolute"),
    ("../../x", "'..'"),
    ("a/../../x", "'..'"),
    ("a\\..\\x", "'..'"),
    ("a\\b.ipynb", "backslash"),
    ("folder/doejane_1234_5678_puzzle1.ipynb", "folder"),
    ("doejane_1234_5678_puzzle1\n.ipynb", "control"),
    ("doejane_1234_5678_\x1b]52;c;aGk=\x07.ipynb", "control"),
    ("doejane_1234_5678_puzzle1\u202eknyp.ipynb", "format"),
    ("doejane_1234_5678_puzzle1\u2028.ipynb", "control"),
    (".", "not a file name"),
])
def test_names_are_flat_and_plain(name, problem):
    found = name_problem(name)
    assert (found is None) if problem is None else (problem in found), found


@pytest.mark.parametrize("member, problem", [
    (info("a.ipynb"), None),
    (info("a.ipynb", mode=0), None),  # a zip made on Windows: no Unix mode
    (info("a.ipynb", mode=0o104755), "setuid"),
    (info("a.ipynb", mode=0o102755), "setgid"),
    (info("a.ipynb", mode=0o120777), "symbolic link"),
    (info("a.ipynb", mode=0o020644), "device"),
    (info("a.ipynb", mode=0o060644), "device"),
    (info("a.ipynb", mode=0o010644), "fifo"),
    (info("a.ipynb", mode=0o040755), "folder"),
    (info("a.ipynb", flag_bits=0x1), "encrypted"),
    (info("a.ipynb", compress_type=zipfile.ZIP_BZIP2), "method 12"),
    (info("a.ipynb", compress_type=zipfile.ZIP_LZMA), "method 14"),
    (info("../a.ipynb"), "'..'"),
])
def test_members_are_plain_files(member, problem):
    found = member_problem(member)
    assert (found is None) if problem is None else (problem in found), found


def test_a_file_is_written_0644_whatever_the_archive_and_umask_say(tmp_path):
    z = one_member_zip(tmp_path / "d.zip", info("a.ipynb", mode=0o100777), b"{}")
    old = os.umask(0o077)
    try:
        assert extract(z, z.infolist()[0], str(tmp_path / "a.ipynb"), Budget(Limits()), "jdoe") == 2
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.lstat(tmp_path / "a.ipynb").st_mode) == 0o644
    assert (tmp_path / "a.ipynb").read_bytes() == b"{}"


def test_a_refused_member_leaves_nothing(tmp_path):
    z = one_member_zip(tmp_path / "d.zip", info("a.ipynb", mode=0o104755), b"\x7fELF")
    with pytest.raises(Rejected, match="setuid"):
        extract(z, z.infolist()[0], str(tmp_path / "a.ipynb"), Budget(Limits()), "jdoe")
    assert not (tmp_path / "a.ipynb").exists()


def test_it_never_writes_through_a_link_or_over_a_file(tmp_path):
    z = one_member_zip(tmp_path / "d.zip", info("a.ipynb"), b"{}")
    (tmp_path / "secret").write_text("keep")
    (tmp_path / "a.ipynb").symlink_to(tmp_path / "secret")
    with pytest.raises(Rejected, match="could not be written"):
        extract(z, z.infolist()[0], str(tmp_path / "a.ipynb"), Budget(Limits()), "jdoe")
    assert (tmp_path / "secret").read_text() == "keep" and (tmp_path / "a.ipynb").is_symlink()


class Endless(io.RawIOBase):
    """A member that never ends, whatever its header says: counts what was read of it."""

    def __init__(self):
        self.given = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        buffer[:] = bytes(len(buffer))
        self.given += len(buffer)
        return len(buffer)


class EndlessZip:
    def __init__(self):
        self.stream = Endless()

    def open(self, member):
        return io.BufferedReader(self.stream)


def test_reading_stops_at_the_cap_whatever_the_header_says(tmp_path):
    z = EndlessZip()
    member = info("a.ipynb", file_size=10, compress_size=1 << 30, compress_type=zipfile.ZIP_STORED)
    with pytest.raises(Rejected, match="larger than the 4 MiB"):
        extract(z, member, str(tmp_path / "a.ipynb"), Budget(Limits(member=4 * MiB)), "jdoe")
    assert not (tmp_path / "a.ipynb").exists()
    assert z.stream.given <= 4 * MiB + 2 * MiB  # a chunk past the cap at most
    # The ratio: 2 MiB out of a member 1 KiB long in the zip.
    member = info("a.ipynb", file_size=10, compress_size=KiB)
    with pytest.raises(Rejected, match="compressed more than 200:1"):
        extract(EndlessZip(), member, str(tmp_path / "a.ipynb"), Budget(Limits()), "jdoe")


def test_a_header_that_understates_the_size_is_damage(tmp_path):
    with zipfile.ZipFile(tmp_path / "d.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.ipynb", bytes(8 * MiB))
    data = bytearray((tmp_path / "d.zip").read_bytes())
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 1000)  # the central directory's uncompressed size
    (tmp_path / "d.zip").write_bytes(bytes(data))
    with zipfile.ZipFile(tmp_path / "d.zip") as z:
        with pytest.raises(Rejected, match="damaged"):
            extract(z, z.infolist()[0], str(tmp_path / "a.ipynb"), Budget(Limits()), "jdoe")
    assert not (tmp_path / "a.ipynb").exists()


def test_a_bomb_is_refused_by_its_header_before_reading(tmp_path):
    with zipfile.ZipFile(tmp_path / "d.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("big.ipynb", bytes(8 * MiB))
        z.writestr("small.ipynb", b"{}" * 1000)
    with zipfile.ZipFile(tmp_path / "d.zip") as z:
        big, small = z.infolist()
        with pytest.raises(Rejected, match="compressed more than 200:1"):
            extract(z, big, str(tmp_path / "big"), Budget(Limits()), "jdoe")
        with pytest.raises(Rejected, match="larger than the 1 MiB"):
            extract(z, big, str(tmp_path / "big"), Budget(Limits(member=MiB, ratio=10 ** 6)), "jdoe")
        extract(z, small, str(tmp_path / "small"), Budget(Limits()), "jdoe")  # 2000 bytes, 1000:1, under the floor


def test_one_student_cannot_use_up_the_download(tmp_path):
    with zipfile.ZipFile(tmp_path / "d.zip", "w", zipfile.ZIP_STORED) as z:
        for n in range(4):
            z.writestr(f"{n}.ipynb", os.urandom(600 * KiB))
    budget = Budget(Limits(member=MiB, student=MiB, total=3 * MiB // 2))
    with zipfile.ZipFile(tmp_path / "d.zip") as z:
        first, second, third, fourth = z.infolist()
        extract(z, first, str(tmp_path / "0"), budget, "rsmith")
        with pytest.raises(Rejected, match="one student's files"):
            extract(z, second, str(tmp_path / "1"), budget, "rsmith")  # a refused file costs nothing
        extract(z, third, str(tmp_path / "2"), budget, "jdoe")
        with pytest.raises(Rejected, match="out of one download"):
            extract(z, fourth, str(tmp_path / "3"), budget, "klee")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0", "2", "d.zip"]


def test_a_name_is_read_every_way_canvas_could_have_written_it():
    assert [(s.lastfirst, s.late, s.user, s.canvas_file_id, s.file_name) for s in splits(
        "van_der_bergann_LATE_2345_6789_puzzle1 (1).ipynb")] == [
        ("van_der_bergann", True, "2345", 6789, "puzzle1 (1).ipynb")]
    assert [(s.lastfirst, s.user, s.file_name) for s in splits("x_1234_1_2345_100_puzzle1.ipynb")] == [
        ("x", "1234", "2345_100_puzzle1.ipynb"), ("x_1234", "1", "100_puzzle1.ipynb"),
        ("x_1234_1", "2345", "puzzle1.ipynb")]
    assert [s.lastfirst for s in splits("_1234_5678_puzzle1.ipynb")] == [""]  # an empty sortable name
    assert [s.user for s in splits("studentå_1234_5678_hw_1_2_x.ipynb")] == ["1234", "1"]
    assert splits("LATE_anon_x7y2k_7002_puzzle1.ipynb") == [] and splits("puzzle1-1.ipynb") == []
    assert splits("_1" * 600) == []  # longer than any Canvas name: not read at all


def test_a_name_that_reads_as_two_students_is_nobodys():
    names = ["x_1234_1_2345_100_puzzle1.ipynb",  # rsmith's display name "x_1234_1"
             "roesmith_2345_101_a_1234_7_puzzle1.ipynb",  # rsmith's file name "a_1234_7_puzzle1.ipynb"
             "roesmith_2345_102_a_2345_7_puzzle1.ipynb",  # twice rsmith, two file names
             "doejane_1234_5678_hw_1_2_puzzle1.ipynb",  # a file name whose other reading has no roster user
             "x_7_8_3456_200_puzzle1.ipynb",  # klee's display name "x_7_8"
             "x_7_8_9_200_puzzle1.ipynb"]  # nobody's
    entries = {e.name: e for e in plan(names, ROSTER, {"9999": "no id"})}
    for name in names[:3]:
        assert entries[name].student is None and entries[name].why_not.startswith("ambiguous"), entries[name]
    assert "1234 (jdoe) or 2345 (rsmith)" in entries[names[0]].why_not
    assert entries[names[3]] == Entry(names[3], "jdoe", "hw_1_2_puzzle1.ipynb")
    assert entries[names[4]] == Entry(names[4], "klee", "puzzle1.ipynb")
    assert "Canvas users 7, 8, 9 (its name reads as any) are not in the roster" in entries[names[5]].why_not


def test_an_uploaded_archive_is_not_collected_and_says_why():
    entries = plan(["roesmith_2345_6789_puzzle1.zip", "roesmith_2345_6790_work.tar.gz"], ROSTER)
    assert all(e.student is None and e.why_not.startswith("an archive") for e in entries)


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_collect_refuses_bad_members_alone_and_keeps_the_folder_of_a_student_with_nothing_taken(tmp_path, capsys):
    course = Course(tmp_path / "course")
    (course.submitted / "rsmith" / "puzzle1").mkdir(parents=True)
    (course.submitted / "rsmith" / "puzzle1" / "puzzle1.ipynb").write_text("earlier")
    roster = tmp_path / "roster.csv"
    roster.write_text("Student,ID,SIS Login ID\nA,1234,jdoe\nB,2345,rsmith\nC,3456,klee\n")
    with zipfile.ZipFile(tmp_path / "d.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("doejane_1234_5678_puzzle1.ipynb", b"{}")
        z.writestr("roesmith_2345_6789_puzzle1.ipynb", bytes(4 * MiB))  # a bomb, by its ratio
        z.writestr(info("leekim_3456_6790_puzzle1.ipynb", mode=0o120777), b"/etc/shadow")
        z.writestr("leekim_3456_6791_puzzle1-1.ipynb", b"{}")
        z.writestr("leekim_3456_6791_puzzle1-1.ipynb", b"{}")
    status = canvas_collect.collect_download(course, "puzzle1", tmp_path / "d.zip", roster, "SIS Login ID")
    out = capsys.readouterr().out
    assert status == 3, out
    assert (course.submitted / "jdoe/puzzle1/puzzle1.ipynb").read_bytes() == b"{}"
    assert (course.submitted / "rsmith/puzzle1/puzzle1.ipynb").read_text() == "earlier"
    assert not (course.submitted / "klee").exists()
    assert "Collected 1 notebook of 1 student" in out
    assert "roesmith_2345_6789_puzzle1.ipynb: compressed more than 200:1" in out
    assert "leekim_3456_6790_puzzle1.ipynb: a symbolic link" in out
    assert "leekim_3456_6791_puzzle1-1.ipynb: in the zip more than once" in out
    assert sorted(p.name for p in course.root.iterdir()) == ["submitted"]  # no scratch folder left


def test_collect_never_writes_through_a_link_in_submitted(tmp_path, capsys):
    course = Course(tmp_path / "course")
    course.submitted.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (course.submitted / "jdoe").symlink_to(tmp_path / "elsewhere")
    roster = tmp_path / "roster.csv"
    roster.write_text("Student,ID,SIS Login ID\nA,1234,jdoe\n")
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as z:
        z.writestr("doejane_1234_5678_puzzle1.ipynb", b"{}")
    assert canvas_collect.collect_download(course, "puzzle1", tmp_path / "d.zip", roster, "SIS Login ID") == 3
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert "submitted/jdoe is not a folder" in capsys.readouterr().out


def test_shown_spells_out_what_a_terminal_would_act_on():
    assert safe_unpack.shown("a\x1b[2Jb\u202ec\nd") == "a\\x1b[2Jb\\u202ec\\nd"
    assert safe_unpack.shown("müller_1_2_x.ipynb") == "müller_1_2_x.ipynb"


def test_names_canvas_writes_without_the_utf8_flag_are_read_as_utf8(tmp_path, capsys):
    # rubyzip (Canvas) writes UTF-8 names without the zip's UTF-8 flag; zipfile reads them as cp437.
    name = "müllerjörg_1234_5678_puzzle1.ipynb"
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as z:
        z.writestr(name, b"{}")
    data = bytearray((tmp_path / "d.zip").read_bytes())
    for signature, flags in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature)
        struct.pack_into("<H", data, at + flags, struct.unpack_from("<H", data, at + flags)[0] & ~0x800)
    (tmp_path / "d.zip").write_bytes(bytes(data))
    with zipfile.ZipFile(tmp_path / "d.zip") as z:
        assert z.infolist()[0].filename != name and safe_unpack.member_name(z.infolist()[0]) == name
    roster = tmp_path / "roster.csv"
    roster.write_text("Student,ID,SIS Login ID\nA,1234,jdoe\n")
    course = Course(tmp_path / "course")
    course.root.mkdir()
    assert canvas_collect.collect_download(course, "puzzle1", tmp_path / "d.zip", roster, "SIS Login ID") == 0
    assert (course.submitted / "jdoe/puzzle1/puzzle1.ipynb").read_bytes() == b"{}"
