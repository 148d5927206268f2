"""Fail closed: grading refuses to start unless the safe pipeline is the one that will run.

Checked before any submission is touched, by ``python -m interp_course grade`` (:func:`check_grading`)
and, for plain ``nbgrader autograde`` / ``generate_feedback``, by a guard that set-up installs as
the environment's own ``<venv>/etc/jupyter/nbgrader_config.py`` (:data:`ENV_GUARD`), which
nbgrader loads before the course's config. Any failure is a :class:`Refusal`: one line, exit 2.

- the course's nbgrader_config.py loads (traitlets would only log the error and go on with
  stock nbgrader: no sandbox, verdict from the student's own kernel);
- the autograde pipeline executes through ``GradeInSandbox`` alone, with the sandboxed kernel
  manager, and feedback goes through ``HideGraderInternals`` and ``HideRubric``;
- bubblewrap starts a sandbox for the user that will grade;
- nbgrader does not run as root (the grading account does; see ``interp_course.security.grader_user``);
- the instructor's files match the release manifest and the grading account cannot write them;
- the folder nbgrader reads submissions from holds only folders and regular files (nbgrader
  copies submissions following links).
"""

from __future__ import annotations

import glob
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from interp_course import models
from interp_course.security import grader_user, manifest
from interp_course.course import Course
from interp_course.exit_status import Refusal

ENV_GUARD_PATH = Path(sys.prefix) / "etc" / "jupyter" / "nbgrader_config.py"

ENV_GUARD = '''\
# Installed by `python -m interp_course setup` (interp_course/security/guard.py). nbgrader loads this
# environment-wide config before the course's nbgrader_config.py. For `autograde` and
# `generate_feedback` it refuses (exit 2) unless the course's sandboxed pipeline loads and is in
# force; anything going wrong in the guard itself is a refusal for those two commands too.
import sys as _sys

try:
    from interp_course.security.guard import guard_nbgrader

    guard_nbgrader(get_config())  # noqa: F821 - provided by traitlets
except SystemExit:
    raise
except BaseException as _error:
    if _sys.argv[1:2] in (["autograde"], ["generate_feedback"]):
        import os as _os

        _sys.stderr.write(f"interp-course: refusing to grade: the guard failed ({type(_error).__name__}: {_error})\\n")
        _sys.stderr.flush()
        _os._exit(2)
'''

GUARDED_COMMANDS = ("autograde", "generate_feedback")




REFUSING = "interp-course: refusing to grade: "  # how nbgrader's guard says it refuses


def refuse(reason: Refusal | str) -> None:
    sys.stderr.write(f"{REFUSING}{reason}\n")
    sys.stderr.flush()
    sys.exit(2)


# --- the checks -------------------------------------------------------------------------------


def load_course_config(course: Course):
    """The course's nbgrader_config.py as a traitlets Config, or Refusal if it does not load."""
    from traitlets.config.loader import PyFileConfigLoader

    path = course.root / "nbgrader_config.py"
    if not path.is_file():
        raise Refusal(f"{path} is missing")
    try:
        return PyFileConfigLoader(path.name, path=str(course.root)).load_config()
    except BaseException as exc:  # noqa: BLE001 - whatever it raises, it did not load
        raise Refusal(f"{path} does not load ({type(exc).__name__}: {str(exc)[:200]})") from None


def _classes(items) -> list[type]:
    from traitlets.utils.importstring import import_item

    return [import_item(item) if isinstance(item, str) else item for item in items]


def check_pipeline(config) -> None:
    """GradeInSandbox is the only step that runs code, and it uses the sandboxed kernel manager."""
    from nbclient import NotebookClient
    from nbgrader.converters import Autograde, GenerateFeedback

    from interp_course.preprocessors.grade_in_sandbox import GradeInSandbox
    from interp_course.preprocessors.hide_grader_internals import HideGraderInternals
    from interp_course.preprocessors.rubric import HideRubric
    from interp_course.sandbox.kernel_manager import SandboxedKernelManager

    autograde = Autograde(config=config)
    try:
        steps = _classes(autograde.autograde_preprocessors)
        sanitize = _classes(autograde.sanitize_preprocessors)
        feedback = _classes(GenerateFeedback(config=config).preprocessors)
    except Exception as exc:  # noqa: BLE001
        raise Refusal(f"a configured preprocessor cannot be imported ({exc})") from None
    runners = [cls for cls in steps + sanitize if isinstance(cls, type) and issubclass(cls, NotebookClient)]
    if runners != [GradeInSandbox] or steps.count(GradeInSandbox) != 1:
        names = ", ".join(cls.__name__ for cls in runners) or "none"
        raise Refusal("the autograde pipeline must run notebooks only through GradeInSandbox "
                      f"(found: {names}); check Autograde.autograde_preprocessors")
    step = GradeInSandbox(config=config)
    if step.kernel_manager_class is not SandboxedKernelManager or not step.require_sandbox:
        raise Refusal(f"GradeInSandbox would use {step.kernel_manager_class.__name__}, "
                      "not the sandboxed kernel manager")
    if HideGraderInternals not in feedback:
        raise Refusal("GenerateFeedback.preprocessors lacks HideGraderInternals")
    if HideRubric not in feedback:
        raise Refusal("GenerateFeedback.preprocessors lacks HideRubric (feedback would show the TA's rubric)")


def _bwrap_probe(bwrap: str) -> list[str]:
    return [bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--proc", "/proc", "--dev", "/dev", "--", "/usr/bin/true"]


def check_bwrap(as_grader: bool = False) -> None:
    """bubblewrap is installed and can start a sandbox for the user who grades."""
    bwrap = shutil.which("bwrap")
    if not bwrap or not shutil.which("prlimit"):
        raise Refusal("bubblewrap (bwrap) or prlimit is not installed: `apt-get install bubblewrap util-linux`")
    argv = _bwrap_probe(bwrap)
    if as_grader:
        argv = grader_user.command(argv)
    probe = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        detail = (probe.stderr.strip().splitlines() or ["no message"])[-1][:200]
        raise Refusal(f"bubblewrap cannot start a sandbox here ({detail})")


def check_integrity(course: Course) -> None:
    found = manifest.differences(course)
    if found:
        more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
        raise Refusal(f"course files differ from the release manifest: {'; '.join(found[:3])}{more}; "
                      "if you changed them on purpose, run `make release`")


def _writable_by_grader(path: Path, info: os.stat_result) -> bool:
    if grader_user.is_grader():
        return os.access(path, os.W_OK, follow_symlinks=False)
    user = grader_user.account()
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    return (info.st_uid == user.pw_uid or bool(info.st_mode & stat.S_IWOTH)
            or (info.st_gid in groups and bool(info.st_mode & stat.S_IWGRP)))


def check_protected(course: Course) -> None:
    """The grading account cannot change the course root, its config or any manifest-covered file."""
    if not (grader_user.is_root() or grader_user.is_grader()):
        return  # a developer grading as themselves: their own files, their own account
    paths = [course.root, course.root / "nbgrader_config.py", course.manifest]
    for name in ("source", "release", "solutions", "grader_tests"):
        top = course.root / name
        if top.is_dir():
            for folder, dirs, files in os.walk(top):
                dirs[:] = [d for d in dirs if d != "__pycache__"]
                paths += [Path(folder, n) for n in [*dirs, *files]]
            paths.append(top)
    for path in paths:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISLNK(info.st_mode) and _writable_by_grader(path, info):
            raise Refusal(f"{path} is writable by the grading account {grader_user.ACCOUNT}: "
                          f"give it back to root (chown root: and chmod go-w)")


def check_submissions(folder: Path) -> None:
    """The folder nbgrader reads submissions from holds folders and regular files only: nbgrader
    copies submissions following links. (``python -m interp_course grade`` hands it staged copies,
    made without following links, so there this holds by construction.)"""
    if not folder.is_dir():
        return
    for parent, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(parent, name)
            mode = os.lstat(path).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                kind = "a link" if stat.S_ISLNK(mode) else "not a regular file"
                raise Refusal(f"{path} is {kind}: replace it with a regular file or remove it")


def check_no_other_config(course_root: Path) -> None:
    """No other nbgrader config would be merged over the course's (e.g. the grading account's own
    ~/.jupyter/nbgrader_config.py, or a nbgrader_config.json beside the course's .py)."""
    from jupyter_core.paths import jupyter_config_path

    folders = jupyter_config_path()
    if grader_user.is_root():  # nbgrader will run as the grading account: root's own ~ does not apply
        folders = [f for f in folders if not Path(f).is_relative_to(Path.home())]
    for folder in [*folders, str(course_root)]:
        for name in ("nbgrader_config.py", "nbgrader_config.json"):
            path = Path(folder, name)
            if path == ENV_GUARD_PATH or (Path(folder) == course_root and name.endswith(".py")):
                continue
            if os.path.lexists(path):
                raise Refusal(f"{path} would be merged into the course's nbgrader config: remove it")


def check_env_guard() -> None:
    try:
        installed = ENV_GUARD_PATH.read_text()
    except OSError:
        installed = ""
    if installed != ENV_GUARD:
        raise Refusal(f"the nbgrader guard is not installed at {ENV_GUARD_PATH}: run `make setup`")


def check_setup() -> None:
    """Set-up has run in this checkout: the model source it chose, and nbgrader's guard."""
    if not (models.SETTINGS_FILE.is_file() or os.environ.get(models.HF_HOME_OVERRIDE)):
        raise Refusal(f"set-up has not run here (no {models.SETTINGS_FILE.name}): run `make setup` once "
                      "(MODEL_SOURCE=auto, stand-ins or hub chooses the models), then this command again")
    check_env_guard()


def check_grading(course: Course) -> None:
    """Everything ``python -m interp_course grade`` needs before it hands nbgrader a submission."""
    check_setup()
    if grader_user.is_root():
        grader_user.account()  # the account nbgrader will run as must exist
    # The files first: loading the config runs it, here possibly as root.
    check_integrity(course)
    check_protected(course)
    check_no_other_config(course.root)
    check_pipeline(load_course_config(course))
    check_bwrap(as_grader=True)


# --- inside nbgrader --------------------------------------------------------------------------

_checked_roots: set[str] = set()


def _course_checks(course: Course, command: str) -> None:
    if str(course.root) in _checked_roots:
        return
    grader_user.check_not_root()
    check_integrity(course)
    check_protected(course)
    if command == "autograde":
        check_bwrap()
    _checked_roots.add(str(course.root))


def _raise_config_file_errors() -> None:
    """A config file that fails to load is an error, not a warning followed by stock nbgrader.

    (What TRAITLETS_APPLICATION_RAISE_CONFIG_FILE_ERROR=1 does, which is read only when traitlets
    is imported; the trait is not configurable, so set it on the app loading this file.)
    """
    from traitlets.config.application import Application

    if Application.initialized():
        Application.instance().raise_config_file_errors = True


def _subcommand(argv: list[str]) -> str:
    return argv[1] if len(argv) > 1 else ""


def guard_nbgrader(c) -> None:
    """Run from the environment's nbgrader_config.py, before the course's config is loaded."""
    _raise_config_file_errors()
    command = _subcommand(sys.argv)
    if command not in GUARDED_COMMANDS:
        return
    try:
        here = Course(Path.cwd())  # nbgrader loads the course config from the working directory
        check_no_other_config(here.root)
        check_integrity(here)
        config = load_course_config(here)
        check_pipeline(config)
        root = config.CourseDirectory.root if "root" in config.CourseDirectory else os.getcwd()
        _course_checks(Course(Path(root)), command)
    except Refusal as reason:
        refuse(reason)
    _check_again_at_start()


def _check_again_at_start() -> None:
    """Check the effective config (command line and every config file merged) before converting."""
    from nbgrader.converters import Autograde, GenerateFeedback

    for converter, command in ((Autograde, "autograde"), (GenerateFeedback, "generate_feedback")):
        start = converter.start
        if getattr(start, "_interp_course_guarded", False):
            continue

        def guarded(self, _start=start, _command=command):
            try:
                check_pipeline(self.config)
                _course_checks(Course(Path(self.coursedir.root)), _command)
                if _command == "autograde":  # the submissions nbgrader will read (the CLI stages copies)
                    cd = self.coursedir
                    one = cd.student_id if glob.escape(cd.student_id) == cd.student_id else "."  # a batch's judging pass
                    check_submissions(Path(cd.format_path(cd.submitted_directory, one, ".")))
            except Refusal as reason:
                refuse(reason)
            return _start(self)

        guarded._interp_course_guarded = True
        converter.start = guarded


def install_env_guard() -> Path:
    """Write :data:`ENV_GUARD` as this environment's nbgrader config (set-up)."""
    ENV_GUARD_PATH.parent.mkdir(parents=True, exist_ok=True)
    if not ENV_GUARD_PATH.is_file() or ENV_GUARD_PATH.read_text() != ENV_GUARD:
        ENV_GUARD_PATH.write_text(ENV_GUARD)
    ENV_GUARD_PATH.chmod(0o644)
    return ENV_GUARD_PATH
