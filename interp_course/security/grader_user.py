"""The unprivileged account that grades: everything that touches submission data runs as it.

Root is needed only to set up (create the account, let it reach the venv and the model cache) and
to hand it the grader-writable state (autograded/, feedback/, gradebook/, grades.csv). The
instructor's files stay root's and read-only to it. A sandboxed kernel's uid maps to this account
(unprivileged bubblewrap), so even a process that left the sandbox could not change the course.

When the course commands run as root they start nbgrader through :func:`command`, which drops to
this account with ``setpriv`` (no capabilities, ``no_new_privs``) and a scrubbed environment.
Run as any other user, commands run as that user unchanged.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from interp_course.course import Course
from interp_course.exit_status import Refusal

ACCOUNT = "interp-grader"
HOME = Path("/var/lib") / ACCOUNT

# What a dropped nbgrader process keeps of the caller's environment; the rest (XDG_RUNTIME_DIR,
# JUPYTER_* overrides such as JUPYTER_NO_CONFIG that would skip the environment's guard, tokens,
# agent sockets) is left behind.
_KEEP_ENV = {"PATH", "LANG", "LANGUAGE", "TZ", "TERM", "NO_COLOR", "TMPDIR", "PYTHONPATH", "PYTHONHASHSEED",
             "HF_HOME", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS", "TQDM_DISABLE",
             "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "INTERP_COURSE_ROOT",
             "INTERP_COURSE_HF_HOME", "ALLOW_NO_CGROUP"}
_KEEP_PREFIXES = ("LC_", "TRAITLETS_")


class AccountMissing(RuntimeError):
    pass


def is_root() -> bool:
    return os.geteuid() == 0


def check_not_root() -> None:
    """nbgrader's grading steps never run as root: a sandboxed kernel's uid maps to the grader's."""
    if is_root():
        raise Refusal(f"nbgrader is running as root; grade with `make grade` (it runs nbgrader as "
                      f"{ACCOUNT}) or `runuser -u {ACCOUNT} -- nbgrader ...`")


def account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(ACCOUNT)
    except KeyError:
        raise AccountMissing(f"the grading account {ACCOUNT!r} does not exist: run `make setup` as root") from None


def is_grader() -> bool:
    try:
        return os.geteuid() == account().pw_uid
    except AccountMissing:
        return False


def ensure_account() -> pwd.struct_passwd:
    """Create the system account (and its group and home) once; needs root."""
    try:
        return account()
    except AccountMissing:
        subprocess.run(["useradd", "--system", "--user-group", "--home-dir", str(HOME), "--create-home",
                        "--shell", "/usr/sbin/nologin", "--comment", "interp-course autograder", ACCOUNT],
                       check=True)
        return account()


def command(argv: list[str]) -> list[str]:
    """``argv``, run as the grading account when the caller is root."""
    if not is_root():
        return list(argv)
    user = account()
    return [shutil.which("setpriv") or "setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
            "--init-groups", "--no-new-privs", "--", *argv]


def environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for :func:`command`: the caller's when not root, else a scrubbed one."""
    base = dict(os.environ if base is None else base)
    if not is_root():
        return base
    user = account()
    env = {k: v for k, v in base.items() if k in _KEEP_ENV or k.startswith(_KEEP_PREFIXES)}
    # The real models come from the instructor's Hugging Face cache, not the account's own home.
    env.setdefault("HF_HOME", str(Path(base.get("HOME", "/root")) / ".cache" / "huggingface"))
    env.update(HOME=user.pw_dir, USER=ACCOUNT, LOGNAME=ACCOUNT, SHELL="/usr/sbin/nologin")
    return env


# --- set-up: letting the account reach what it reads ----------------------------------------


def _can_traverse(info: os.stat_result, user: pwd.struct_passwd, groups: set[int]) -> bool:
    if info.st_uid == user.pw_uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in groups:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def grant_traversal(paths) -> list[Path]:
    """Let the account pass through every folder above ``paths`` (an ACL ``x`` entry, nothing more).

    A venv made from a Python under /root (pyenv) or a model cache in /root/.cache is otherwise out
    of its reach. Returns the folders changed. Needs root and ``setfacl`` (Debian's ``acl``).
    """
    user = account()
    groups = set(os.getgrouplist(ACCOUNT, user.pw_gid))
    changed = []
    for path in paths:
        real = Path(os.path.realpath(path))
        for folder in [*reversed(real.parents), real]:
            try:
                info = os.stat(folder)
            except FileNotFoundError:
                break
            if stat.S_ISDIR(info.st_mode) and not _can_traverse(info, user, groups) and not _acl_lets_through(folder):
                subprocess.run(["setfacl", "-m", f"u:{ACCOUNT}:x", str(folder)], check=True)
                changed.append(folder)
    return changed


def _acl_lets_through(folder: Path) -> bool:
    """Whether an ACL entry (and the mask) already gives the account ``x`` on ``folder``."""
    if not shutil.which("getfacl"):
        return False
    text = subprocess.run(["getfacl", "--omit-header", "--absolute-names", str(folder)],
                          capture_output=True, text=True).stdout
    entries = dict(line.rsplit(":", 1) for line in text.splitlines() if line.count(":") >= 2 and "#" not in line)
    return "x" in entries.get(f"user:{ACCOUNT}", "") and "x" in entries.get("mask:", "x")


def python_paths() -> list[Path]:
    """What a dropped ``python -m nbgrader`` must reach: this venv and the interpreter it links to."""
    return [Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent]


# --- handing the account its state ---------------------------------------------------------


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    """chown ``top`` and everything below to the account, never following a link."""
    os.chown(top, uid, gid, follow_symlinks=False)
    # By folder descriptor: a folder swapped for a link while the walk runs is never gone through.
    for _folder, dirs, files, fd in os.fwalk(top, follow_symlinks=False):
        for name in dirs + files:
            os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)


def hand_over(folder: Path) -> None:
    """Give a folder this process made (e.g. staged submissions) to the account, when root."""
    if is_root():
        user = account()
        _chown_tree(folder, user.pw_uid, user.pw_gid)


def prepare_state(course: Course) -> None:
    """Create the grader-writable state and give it to the account (as root; else just create it).

    Each path must be what it claims (a real folder, a regular file), never a link, before root
    touches it.
    """
    from interp_course.exit_status import Refusal

    root = is_root()
    user = account() if root else None
    for folder in course.grader_state():
        if os.path.lexists(folder) and not stat.S_ISDIR(os.lstat(folder).st_mode):
            raise Refusal(f"{folder} should be a folder but is not (a link?): remove it")
        folder.mkdir(mode=0o755, exist_ok=True)
        if user:
            _chown_tree(folder, user.pw_uid, user.pw_gid)
    db = course.gradebook
    if os.path.lexists(db) and not stat.S_ISREG(os.lstat(db).st_mode):
        raise Refusal(f"{db} should be a regular file but is not (a link?): remove it")
    csv = course.grades_csv
    if os.path.lexists(csv) and not stat.S_ISREG(os.lstat(csv).st_mode):
        raise Refusal(f"{csv} should be a regular file but is not (a link?): remove it")
    if user:
        # `nbgrader export` (as the account) rewrites it in place; the course root stays root's.
        fd = os.open(csv, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            os.fchown(fd, user.pw_uid, user.pw_gid)
        finally:
            os.close(fd)
        _share_submissions(course, user.pw_gid)
        grant_traversal([course.root])


def _share_submissions(course: Course, gid: int) -> None:
    """Let the account read submitted/ (group read), without giving it write access there."""
    if not course.submitted.is_dir():
        return
    for folder, dirs, files in os.walk(course.submitted):
        for path in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                continue  # the guard refuses links in submitted/ before grading
            extra = stat.S_IRGRP | (stat.S_IXGRP if stat.S_ISDIR(info.st_mode) else 0)
            os.chown(path, -1, gid, follow_symlinks=False)
            os.chmod(path, (info.st_mode | extra) & ~stat.S_IWGRP & 0o7777)
