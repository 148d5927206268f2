"""The kernel's scratch folder: what goes in (regular files only) and that everything comes out."""

from __future__ import annotations

import os
import stat

from interp_course.sandbox import workdir


def test_only_regular_files_are_copied_and_no_link_is_followed(tmp_path):
    source, outside = tmp_path / "autograded", tmp_path / "outside"
    source.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("the answers")
    (source / "data.csv").write_text("1,2\n")
    (source / "run.sh").write_text("echo hi\n")
    (source / "run.sh").chmod(0o755)
    (source / "puzzle1.ipynb").write_text("{}")
    (source / "sub").mkdir()
    (source / "sub" / "more.txt").write_text("more")
    (source / "link.txt").symlink_to(outside / "secret.txt")
    (source / "sub" / "folder-link").symlink_to(outside)
    os.mkfifo(source / "pipe")

    skipped = workdir.copy_regular_files(source, tmp_path / "work", exclude=["*.ipynb"])

    copied = {str(p.relative_to(tmp_path / "work")) for p in (tmp_path / "work").rglob("*")}
    assert copied == {"data.csv", "run.sh", "sub", "sub/more.txt"}
    assert all(not p.is_symlink() for p in (tmp_path / "work").rglob("*"))
    assert (tmp_path / "work" / "run.sh").stat().st_mode & stat.S_IXUSR
    assert sorted(os.path.basename(p) for p in skipped) == ["folder-link", "link.txt", "pipe"]


def test_remove_tree_takes_everything_and_follows_nothing(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious.txt").write_text("do not delete")
    run = workdir.make(prefix="test-run-")
    try:
        # Deeper than any path (PATH_MAX) and than Python's recursion limit.
        fd = os.open(run, os.O_RDONLY)
        for _ in range(1200):
            os.mkdir("dddd", dir_fd=fd)
            deeper = os.open("dddd", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = deeper
        os.close(os.open("bottom", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
        os.close(fd)
        (run / "to-keep").symlink_to(keep)  # a link to a folder: unlinked, not emptied
        (run / "to-file").symlink_to(keep / "precious.txt")
        (run / "loop-a").symlink_to("loop-b")
        (run / "loop-b").symlink_to("loop-a")
        os.mkfifo(run / "pipe")
        (run / os.fsdecode(b"odd-\xff")).write_text("x")
        for name, mode in (("locked", 0o000), ("read-only", 0o500)):
            (run / name / "inner").mkdir(parents=True)
            (run / name / "inner" / "f").write_text("x")
            (run / name / "inner").chmod(mode)
            (run / name).chmod(mode)
    finally:
        workdir.remove_tree(run)
    assert not os.path.lexists(run)
    assert (keep / "precious.txt").read_text() == "do not delete"
