"""Run Jupyter kernels in a sandbox with resource limits: one way, forked from a zygote.

:class:`SandboxedKernelManager` is a drop-in ``AsyncKernelManager`` whose every kernel is a fork
of a *zygote* (:mod:`interp_course.sandbox.zygote`): one sandboxed process per grader process that has
imported the heavy libraries once. The zygote itself is started as::

    prlimit --as=... --fsize=... --core=0 -- \\
        bwrap --unshare-all ... -- <venv python> -c <zygote launcher> <preload modules>

and each kernel it forks gets namespaces, ``/proc``, tmpfs mounts, an unprivileged uid and, where
the machine allows it, a cgroup of its own (see :mod:`interp_course.sandbox.cgroups`) that caps the memory
and the number of processes of everything in that kernel's sandbox together. There is no other
launch path: the tests drive this one (as the grading account), and so does every grading run.

Kernels start only as an unprivileged account (``interp-grader``; ``make grade`` runs nbgrader as
it): a manager used as root refuses (:class:`SandboxUnavailableError`). The sandbox uid maps to the
grader's uid, so it must never be root; and run by root, bwrap covers parts of ``/proc`` with
read-only binds, after which Linux refuses a forked kernel a ``/proc`` of its own.

It is meant for ``nbgrader autograde`` (see
:class:`interp_course.preprocessors.resilient_execute.ResilientExecute`), where each kernel runs
one student's notebook.

What the sandbox guarantees
---------------------------
* **Filesystem.** The kernel sees a read-only root that contains only:
  ``/usr`` and the ``/bin``, ``/sbin``, ``/lib*`` links or dirs (read-only); a
  short list of harmless files from ``/etc`` (``etc_paths``: passwd, group,
  ld.so.cache, ssl certificates, fonts, ...; *not* ``/etc/shadow``); the Python
  installation (``sys.prefix`` i.e. the venv, ``sys.base_prefix``) and the package read-only;
  ``readonly_paths`` read-only; ``writable_paths`` and the notebook's working
  directory read-write; a private per-kernel directory holding the connection
  file and the IPC sockets; its own size-limited tmpfs on ``/tmp``, ``/dev/shm`` and
  ``$HOME``; its own ``/proc`` (only the kernel's own processes; ``/proc/sys``
  read-only) and a minimal ``/dev``.  Everything else (sibling directories of the working directory,
  other students' runs, the gradebook, ``solutions/``, the grader's
  home directory, SSH keys, ...) does not exist inside: the grader's runs folder, where every
  run's folders are made, is covered by an empty tmpfs with only this run's folders bound back.
  Bind destinations are the same paths as outside, so absolute paths keep working.
* **Network.** A new, empty network namespace per kernel: no TCP/UDP at all, not even to
  127.0.0.1 of the host; the kernel talks to the grader over ZMQ IPC sockets in
  the private directory.  Abstract unix sockets of the host are unreachable too.
* **Processes / IPC.** New pid, ipc, uts and cgroup namespaces per kernel: the kernel
  cannot see or signal grader processes, the zygote or another kernel.  When the kernel manager
  kills the kernel, its pid namespace is torn down, so every process the notebook spawned
  (daemons, forks) dies with it; the zygote dies with the grader (``--die-with-parent``).
* **Privileges.** The kernel runs as ``sandbox_uid``/``sandbox_gid`` (65534, "nobody") in user
  namespaces mapped to the grading account's uid outside (files it writes in the working
  directory belong to that account), with no capabilities, ``no_new_privs`` and no further user
  namespaces. The grader is never root (see above), so uid 65534 is a view of an unprivileged uid.
* **Environment.** The environment is cleared; only ``env_passthrough`` variables
  (locale, thread counts, ...) and ``extra_env`` reach the kernel, plus
  ``HOME``, ``PATH``, ``TMPDIR``.  Grader secrets in environment variables do
  not leak.  ``JPY_PARENT_PID`` is never set.
* **Limits per process (prlimit).** ``RLIMIT_AS`` (``memory_limit_mb``):
  big allocations fail with ``MemoryError`` instead of exhausting the machine;
  ``RLIMIT_FSIZE`` (``file_size_limit_mb``): no single file larger than that;
  no core dumps; optional ``RLIMIT_CPU`` / ``RLIMIT_NPROC``. Set on the zygote, inherited by
  every kernel it forks.
* **Limits per sandbox (cgroup), when a cgroup can be used.**  Each kernel start
  gets a fresh cgroup (v2, or v1 ``memory`` + ``pids``): the forked kernel waits until the grader
  has moved it in before it unshares or runs anything, so nothing of the notebook runs outside it:
  ``cgroup_memory_limit_mb`` bounds the memory (+ swap) of all its processes
  together, including its tmpfs files; beyond it the OOM killer stops one of the
  sandbox's processes (not the grader, not the zygote, not another sandbox).
  ``cgroup_pids_limit`` bounds its processes + threads: a fork bomb gets
  ``EAGAIN`` at that count instead of filling the machine's pid table.  When the
  kernel ends (shutdown, restart, death) every process left in the cgroup is
  killed and the cgroup removed.  :meth:`SandboxedKernelManager.cgroup_stats`
  reports the peak memory, OOM kills and refused forks (``describe()`` turns
  them into a sentence for the student).  Where no cgroup can be used (no
  controller mounted, no permission) the kernel runs with the per-process limits
  only and one warning says so, or, with ``require_cgroup = True`` (``nbgrader_config.py`` sets
  it unless ``ALLOW_NO_CGROUP=1``), it is not started at all (:class:`SandboxUnavailableError`).
* **Kernel integrity.** The zygote imports ipykernel (and its preload) before anything of the
  notebook's directory is on ``sys.path``, so a file such as ``ipykernel_launcher.py`` or
  ``zmq.py`` shipped in the student's directory cannot replace the kernel itself.
* Interrupts are sent as ``interrupt_request`` messages (``interrupt_mode =
  "message"``): a signal to the kernel's first process does not reach the kernel in its own
  pid namespace.

What it does NOT guarantee
--------------------------
* **CPU time / wall time.** Only the per-cell timeout of the executor bounds
  wall time (``cpu_time_limit_s`` is an optional per-process CPU budget for the
  whole notebook).  The kernel can use all cores while it runs; there is no
  cgroup CPU limit.  Processes a cell leaves running in the background (e.g. a
  fork bomb held at ``cgroup_pids_limit``) keep running, and keep their share
  of the pids and memory limits, until the kernel ends, not just until the cell
  times out.
* **Total memory and processes without a cgroup** (the fallback above):
  ``RLIMIT_AS`` is per process and is about *virtual* memory, so a notebook that
  forks can use ``n * memory_limit_mb``, plus ``tmpfs_size_mb`` per tmpfs
  mount; ``max_processes`` (``RLIMIT_NPROC``) counts per real uid (all the grading account's
  processes).  A fork bomb then runs until the cell timeout and
  the whole pid namespace is killed.
* **Which process the OOM killer picks.**  Over ``cgroup_memory_limit_mb`` the
  kernel kills the sandbox's largest process: a forked child, or the kernel
  itself (the executor then reports ``KernelDied`` and starts a fresh one).
  The sandbox's memory is bounded, not its behaviour at the limit.
* **Disk use** inside ``writable_paths`` and the working directory: each file is
  capped by ``RLIMIT_FSIZE`` but not the number of files.  Anything in the
  writable directories can be read, changed or deleted by the notebook.
* **Kernel attack surface.** No seccomp filter; a Linux kernel exploit escapes
  any namespace sandbox.  Read-only binds are visible in full (e.g. the whole
  venv, ``/usr``).  Files mounted read-only that are owned by the grader's uid
  and mode 0600 are readable (the sandbox uid maps to the grader's uid), so do
  not put secrets in ``readonly_paths``.
* **Grading integrity.** Student code and the hidden test cells share one
  kernel; the sandbox protects the machine, not the test cells from
  monkeypatching.

Operational notes
-----------------
* The zygote is started from a thread that lives as long as the grader process (bwrap's
  ``--die-with-parent`` uses ``PR_SET_PDEATHSIG``, which fires when the *thread* that started
  it exits); each kernel dies with its first process, which the grader kills to stop it.
* Kernels whose policy differs (binds, environment, limits) fork from different zygotes; a
  grader process keeps at most two.
* A kernel's working directory and run directory must lie in the grader's runs folder
  (:func:`interp_course.sandbox.zygote.runs_root`, under ``$TMPDIR``): the only folder a zygote's
  kernels can be given. ``GradeInSandbox`` makes its run folders there.
* ``last_command`` is the prlimit/bwrap command line of the zygote the kernel was forked from.
"""

from __future__ import annotations

import atexit
import asyncio
import os
import shutil
import sys
import tempfile
import threading
import time
import typing as t
from multiprocessing import util as _mp_util

from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from traitlets import Bool, CaselessStrEnum, Dict, Int, List, Unicode, default

from interp_course.sandbox import zygote as _zygote
from interp_course.sandbox.cgroups import CgroupStats, CgroupUnavailable, SandboxCgroup, open_parent

__all__ = ["SandboxedKernelManager", "SandboxUnavailableError", "find_bwrap"]

_MB = 1024 * 1024
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # interp_course/

# Running zygotes of this grader process, by the command that started them (their policy).
_zygotes: dict[tuple, _zygote.Zygote] = {}
_zygotes_lock = threading.Lock()
_MAX_ZYGOTES = 2


def stop_zygotes() -> None:
    """Stop this process's zygotes (they also die with it) and remove its runs folder."""
    with _zygotes_lock:
        for z in _zygotes.values():
            z.stop()
        _zygotes.clear()
        _zygote.remove_runs_root()


atexit.register(stop_zygotes)
# multiprocessing workers leave with os._exit (no atexit), after running these finalizers
_mp_util.Finalize(None, stop_zygotes, exitpriority=10)


class SandboxUnavailableError(RuntimeError):
    """bubblewrap (or prlimit) is missing or does not work on this machine."""


def find_bwrap(path: str = "") -> str:
    """Return the bwrap executable or raise a :class:`SandboxUnavailableError`."""
    found = path if path and os.path.isfile(path) else shutil.which(path or "bwrap")
    if not found:
        raise SandboxUnavailableError(
            f"bubblewrap ({path or 'bwrap'}) was not found, so student notebooks cannot be "
            "sandboxed. Install it with `apt-get install bubblewrap` (Debian/Ubuntu; "
            "`dnf install bubblewrap` on Fedora) or set "
            "c.SandboxedKernelManager.bwrap_path to its location."
        )
    return found


def _find_prlimit(path: str = "") -> str:
    found = path if path and os.path.isfile(path) else shutil.which(path or "prlimit")
    if not found:
        raise SandboxUnavailableError(
            "prlimit was not found (needed for the sandbox's memory/file-size limits). "
            "Install it with `apt-get install util-linux` or set "
            "c.SandboxedKernelManager.prlimit_path."
        )
    return found


# Files and directories from /etc that programs commonly need and that hold no secrets.
_DEFAULT_ETC = [
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/locale.alias",
    "/etc/mime.types",
    "/etc/os-release",
    "/etc/debian_version",
    "/etc/alternatives",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/fonts",
]

_DEFAULT_ENV_PASSTHROUGH = [
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_NUMERIC",
    "LC_MESSAGES",
    "TZ",
    "TERM",
    "PYTHONHASHSEED",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
]


# reasons already warned about: one warning per reason and grader process, not per kernel
_cgroup_warned: set[str] = set()


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(os.path.expanduser(path)))


def _depth(path: str) -> int:
    return len([p for p in path.split("/") if p])


class SandboxedKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose kernels fork from a sandboxed zygote (the module's docstring).

    All options are traitlets and can be set from ``nbgrader_config.py`` as
    ``c.SandboxedKernelManager.<name> = ...``.  Each instance manages one kernel
    and creates a private run directory in the grader's runs folder (connection file, IPC
    sockets, kernel log) that is removed again by :meth:`cleanup_resources`.
    """

    # --- policy --------------------------------------------------------------------------
    readonly_paths = List(
        Unicode(),
        help="Extra host paths bound read-only at the same path inside the sandbox "
        "(e.g. course package, model checkpoints). Missing paths are skipped with a warning.",
    ).tag(config=True)

    writable_paths = List(
        Unicode(),
        help="Extra host paths bound read-write at the same path inside the sandbox.",
    ).tag(config=True)

    writable_cwd = Bool(
        True,
        help="Bind the kernel's working directory (the notebook's directory) read-write. "
        "If False it is bound read-only.",
    ).tag(config=True)

    system_paths = List(
        Unicode(),
        default_value=["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"],
        help="System directories bound read-only (symlinks such as /bin -> usr/bin "
        "are recreated as symlinks).",
    ).tag(config=True)

    etc_paths = List(
        Unicode(),
        default_value=list(_DEFAULT_ETC),
        help="Files/dirs under /etc bound read-only if they exist. /etc is NOT bound as "
        "a whole (it may hold secrets such as /etc/shadow).",
    ).tag(config=True)

    bind_python = Bool(
        True,
        help="Bind the running Python (sys.prefix, i.e. the venv, and sys.base_prefix) "
        "read-only so that the kernel can start.",
    ).tag(config=True)

    memory_limit_mb = Int(
        6144, help="RLIMIT_AS (virtual memory) per sandboxed process in MiB; 0 = unlimited."
    ).tag(config=True)

    file_size_limit_mb = Int(
        256, help="RLIMIT_FSIZE (largest file a process may write) in MiB; 0 = unlimited."
    ).tag(config=True)

    cpu_time_limit_s = Int(
        0,
        help="RLIMIT_CPU per process in seconds of CPU time, for the kernel's whole life "
        "(i.e. the whole notebook); 0 = unlimited.",
    ).tag(config=True)

    max_processes = Int(
        0,
        help="RLIMIT_NPROC; 0 = unlimited. Counts all processes of the grader's real uid "
        "(the grading account's), not the sandbox's: cgroup_pids_limit is the sandbox's bound.",
    ).tag(config=True)

    cgroup_memory_limit_mb = Int(
        6144,
        help="Memory of the whole sandbox in MiB (all its processes together, including "
        "files in its tmpfs mounts and page cache; memory + swap), enforced by a cgroup per "
        "kernel; the OOM killer stops a process of the sandbox beyond it. 0 = no limit.",
    ).tag(config=True)

    cgroup_pids_limit = Int(
        256,
        help="Processes + threads the whole sandbox may have at once (cgroup pids "
        "controller); further fork()/clone() fail with EAGAIN. ipykernel itself uses about "
        "10, torch one per core. 0 = no limit. With both cgroup limits 0 no cgroup is used.",
    ).tag(config=True)

    require_cgroup = Bool(
        False,
        help="Refuse to start a kernel when no cgroup can be used (no memory/pids "
        "controller, or no permission). If False, the kernel runs with the per-process "
        "prlimit limits only and one warning says what is not enforced. The default is "
        "False so that grading still works on laptops and in containers without cgroup "
        "delegation; set it True for the real grading run.",
    ).tag(config=True)

    cgroup_root = Unicode(
        "",
        help="Where the cgroup hierarchies are: a cgroup2 mount point or a directory with "
        "v1 'memory' and 'pids' mounts. Default: detected from /proc/self/mountinfo.",
    ).tag(config=True)

    cgroup_parent = Unicode(
        "interp-course",
        help="Parent cgroup of the per-kernel cgroups. Relative: under the grader's own "
        "cgroup (limits on the grader keep bounding its sandboxes). Absolute ('/name'): "
        "under the hierarchy root, e.g. prepared by root with "
        "interp_course.sandbox.cgroups.prepare_delegated_parent for an unprivileged grader.",
    ).tag(config=True)

    tmpfs_size_mb = Int(
        512, help="Size of each tmpfs (/tmp, /dev/shm, $HOME) in MiB."
    ).tag(config=True)

    extra_env = Dict(
        value_trait=Unicode(),
        help="Environment variables set inside the sandbox (applied last).",
    ).tag(config=True)

    env_passthrough = List(
        Unicode(),
        default_value=list(_DEFAULT_ENV_PASSTHROUGH),
        help="Variables copied from the grader's environment if set. Everything else is "
        "cleared.",
    ).tag(config=True)

    sandbox_uid = Int(
        65534,
        allow_none=True,
        help="uid inside the sandbox (new user namespace, mapped to the grader's uid). Kernels "
        "need one (each forked from the zygote makes a user namespace of its own); None, for "
        "sandboxed commands that are not kernels only, keeps the grader's uid (capabilities are "
        "dropped either way).",
    ).tag(config=True)

    sandbox_gid = Int(65534, allow_none=True, help="gid inside the sandbox.").tag(config=True)

    home_dir = Unicode(
        "",
        help="$HOME inside the sandbox (an empty tmpfs). Default: the grader's home "
        "directory path, so that it is hidden.",
    ).tag(config=True)

    hostname = Unicode("sandbox", help="Hostname inside the sandbox.").tag(config=True)

    extra_bwrap_args = List(
        Unicode(), help="Extra arguments appended to the bwrap options (before --)."
    ).tag(config=True)

    bwrap_path = Unicode("", help="Path to bwrap. Default: found on PATH.").tag(config=True)

    prlimit_path = Unicode("", help="Path to prlimit. Default: found on PATH.").tag(config=True)

    zygote_preload = List(
        Unicode(),
        default_value=["torch", "transformer_lens"],
        help="Modules the zygote imports before it forks any kernel (library imports only: never "
        "course material). A module it cannot import is skipped and reported.",
    ).tag(config=True)

    zygote_start_timeout = Int(
        300, help="Seconds a zygote may take for its imports before the start fails."
    ).tag(config=True)

    # The kernel lives in a fresh network namespace: TCP cannot reach it.
    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

    @default("cache_ports")
    def _default_cache_ports(self) -> bool:
        return False

    # --- state ---------------------------------------------------------------------------
    _sbx_run_dir: str | None = None
    _sbx_log = None
    _sbx_last_log = ""  # the end of the kernel's log, kept when its run folder is removed
    _sbx_log_mark = 0
    _sbx_cgroup: SandboxCgroup | None = None
    #: the prlimit/bwrap command line of the zygote the running kernel was forked from
    last_command: list[str] | None = None
    #: final stats of the last kernel's cgroup, kept after the cgroup is removed
    last_cgroup_stats: CgroupStats | None = None

    # interrupts must be messages: a signal to the kernel's first process never reaches the kernel
    @property
    def kernel_spec(self):  # type: ignore[override]
        spec = AsyncKernelManager.kernel_spec.fget(self)  # type: ignore[attr-defined]
        if spec is not None and spec.interrupt_mode != "message":
            spec.interrupt_mode = "message"
        return spec

    # --- helpers -------------------------------------------------------------------------
    @property
    def run_dir(self) -> str | None:
        """The private per-kernel directory (outside the sandbox)."""
        return self._sbx_run_dir

    @property
    def socket_dir(self) -> str | None:
        """The part of :attr:`run_dir` that is bound into the sandbox."""
        return os.path.join(self._sbx_run_dir, "s") if self._sbx_run_dir else None

    def _ensure_run_dir(self) -> None:
        if self._sbx_run_dir and os.path.isdir(self._sbx_run_dir):
            return
        # the only folder a zygote's kernels can be given
        self._sbx_run_dir = _real(tempfile.mkdtemp(prefix="nbsbx-", dir=_zygote.runs_root()))
        os.makedirs(self.socket_dir, mode=0o700)  # type: ignore[arg-type]
        sdir = self.socket_dir
        assert sdir is not None
        self.connection_file = os.path.join(sdir, "kernel.json")
        self.ip = os.path.join(sdir, "k")
        if len(self.ip) > 90:
            raise SandboxUnavailableError(
                f"IPC socket path {self.ip!r} is too long for a unix socket; set TMPDIR to a "
                "shorter directory (the runs folder is made there)."
            )

    def _log_path(self) -> str | None:
        return os.path.join(self._sbx_run_dir, "kernel.log") if self._sbx_run_dir else None

    def mark_log(self) -> None:
        """Remember the current end of the kernel log (see :meth:`kernel_log_tail`)."""
        path = self._log_path()
        try:
            self._sbx_log_mark = os.path.getsize(path) if path else 0
        except OSError:
            self._sbx_log_mark = 0

    def kernel_log_tail(self, nbytes: int = 4000, since_mark: bool = False) -> str:
        """The last bytes the kernel (and the zygote's child setting it up) wrote to stdout/stderr.

        With ``since_mark`` only what was written after :meth:`mark_log` (i.e.
        without ipykernel's start-up banner).
        """
        path = self._log_path()
        if path is None:  # the run is over (e.g. nbclient cleans up a kernel that died at start)
            return self._sbx_last_log[-nbytes:]
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                end = f.tell()
                start = max(0, end - nbytes)
                if since_mark:
                    start = max(start, self._sbx_log_mark)
                f.seek(start)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _python_paths(self, kernel_argv: list[str]) -> list[str]:
        paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
        if kernel_argv and os.path.isabs(kernel_argv[0]):
            # e.g. <venv>/bin/python -> <venv>, and the installation it links to
            for exe in (os.path.abspath(kernel_argv[0]), _real(kernel_argv[0])):
                bindir = os.path.dirname(exe)
                if os.path.basename(bindir) == "bin":
                    paths.add(os.path.dirname(bindir))
        return sorted(p for p in paths if p and p != "/")

    def _sandbox_env(self) -> dict[str, str]:
        home = self.home_dir or os.path.expanduser("~")
        env: dict[str, str] = {}
        for name in self.env_passthrough:
            if name in os.environ:
                env[name] = os.environ[name]
        env.setdefault("LANG", "C.UTF-8")
        env["HOME"] = home
        env["TMPDIR"] = "/tmp"
        env["PATH"] = os.pathsep.join(
            [os.path.join(sys.prefix, "bin"), "/usr/local/bin", "/usr/bin", "/bin"]
        )
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.update(self.extra_env)
        return env

    def _host_binds(self, argv: list[str], zygote_runs: str | None = None) -> list[tuple[str, bool, str]]:
        """The host folders a sandbox binds at their own paths: (path, writable, what), beside the
        system folders, /tmp and $HOME. A zygote leaves out what lies in its runs folder (each
        kernel binds its own run) and binds the package it serves from."""
        def outside_runs(paths):
            return [p for p in paths if not (zygote_runs and _zygote.under(p, zygote_runs))]

        binds = [(p, False, "") for p in (self._python_paths(argv) if self.bind_python else [])]
        binds += [(p, False, "readonly") for p in outside_runs(self.readonly_paths)]
        binds += [(p, True, "writable") for p in outside_runs(self.writable_paths)]
        if zygote_runs:
            binds.append((_PACKAGE_DIR, False, ""))
        return binds

    def _covered_binds(self, argv: list[str], runs: str) -> list[tuple[str, bool]]:
        """What a zygote's kernel must bind again over its fresh /tmp and $HOME: the zygote's own
        binds from there, e.g. a course (its venv, package and models) that lives under /tmp."""
        home = _real(self.home_dir or os.path.expanduser("~"))
        found = []
        for path, writable, _what in self._host_binds(argv, runs):
            if os.path.lexists(path):
                real = _real(path)
                if _zygote.under(real, "/tmp") or _zygote.under(real, home):
                    found.append((real, writable))
        return found

    def build_sandbox_command(
        self, argv: list[str], cwd: str | None = None, zygote_runs: str | None = None
    ) -> list[str]:
        """Wrap ``argv`` in prlimit + bwrap according to this manager's policy.

        With ``zygote_runs`` the command starts this manager's zygote, the one way its kernels
        start: the runs folder is bound read-write (paths under it are left out: each forked
        kernel binds its own), and user namespaces stay allowed (each kernel makes its own and
        then forbids further ones).

        Without it, a sandboxed command that is not a kernel (the figures' Chromium:
        :mod:`interp_course.sandbox.figures`): ``cwd`` is the working directory inside (bound read-write
        if ``writable_cwd``; default: the sandbox's own ``/tmp``).
        """
        bwrap = find_bwrap(self.bwrap_path)
        argv = list(argv)

        home = _real(self.home_dir or os.path.expanduser("~"))
        tmp_size = str(max(1, self.tmpfs_size_mb) * _MB)

        # (dest, rank, args): sorted by depth so parents are mounted before children;
        # at equal paths later ranks mount on top (tmpfs < ro < rw).
        mounts: list[tuple[str, int, list[str]]] = []

        def tmpfs(dest: str) -> None:
            mounts.append((dest, 0, ["--size", tmp_size, "--tmpfs", dest]))

        def bind(src: str, writable: bool, *, must_exist: bool = False, what: str = "") -> None:
            src_abs = os.path.abspath(os.path.expanduser(src))
            if not os.path.lexists(src_abs):
                if must_exist:
                    raise FileNotFoundError(f"sandbox {what} path does not exist: {src_abs}")
                if what:
                    self.log.warning("Sandbox: %s path %s does not exist; skipped", what, src)
                return
            real = _real(src_abs)
            if real == "/":
                raise ValueError("refusing to bind the host's / into the sandbox")
            flag = "--bind" if writable else "--ro-bind"
            mounts.append((real, 2 if writable else 1, [flag, real, real]))

        for p in self.system_paths:
            if os.path.islink(p):
                mounts.append((p, 1, ["--symlink", os.readlink(p), p]))
            elif os.path.isdir(p):
                mounts.append((p, 1, ["--ro-bind", p, p]))
        for p in self.etc_paths:
            if os.path.exists(p):
                real = _real(p)
                mounts.append((p, 1, ["--ro-bind", real, p]))
        tmpfs("/tmp")
        tmpfs(home)
        for p, writable, what in self._host_binds(argv, zygote_runs):
            bind(p, writable, what=what)
        if zygote_runs:
            bind(zygote_runs, True, must_exist=True, what="runs")
            cwd = "/"
        elif cwd:
            cwd = _real(cwd)
            bind(cwd, self.writable_cwd, must_exist=True, what="working directory")
        else:
            cwd = "/tmp"

        seen = set()
        ordered = []
        for dest, rank, args in sorted(mounts, key=lambda m: (_depth(m[0]), m[1])):
            key = tuple(args)
            if key not in seen:
                seen.add(key)
                ordered.extend(args)

        cmd: list[str] = []
        limits = []
        if self.memory_limit_mb > 0:
            limits.append(f"--as={self.memory_limit_mb * _MB}")
        if self.file_size_limit_mb > 0:
            limits.append(f"--fsize={self.file_size_limit_mb * _MB}")
        if self.cpu_time_limit_s > 0:
            limits.append(f"--cpu={self.cpu_time_limit_s}")
        if self.max_processes > 0:
            limits.append(f"--nproc={self.max_processes}")
        limits.append("--core=0")
        cmd += [_find_prlimit(self.prlimit_path), *limits, "--"]

        cmd += [bwrap, "--unshare-all", "--die-with-parent", "--new-session"]
        if self.sandbox_uid is not None:
            cmd += ["--unshare-user", "--uid", str(self.sandbox_uid)]
            cmd += ["--gid", str(self.sandbox_gid if self.sandbox_gid is not None else self.sandbox_uid)]
            if not zygote_runs:
                cmd += ["--disable-userns"]
        cmd += ["--cap-drop", "ALL", "--hostname", self.hostname]
        cmd += ["--clearenv"]
        env = self._sandbox_env()
        if zygote_runs:
            env = self._zygote_env(env, zygote_runs)
        for k, v in env.items():
            cmd += ["--setenv", k, v]
        cmd += ["--unsetenv", "JPY_PARENT_PID"]
        # A fresh /proc, but with the sysctl tree read-only: the sandbox uid maps to the
        # grader's uid, and for root Linux grants sysctl writes by uid alone (no capability
        # needed for e.g. kernel.core_pattern, a host-root escape). bwrap itself skips
        # /proc/sys because the directory is not writable.
        cmd += ["--proc", "/proc"]
        if not zygote_runs:
            # (a zygote's kernels mount their own /proc, which Linux allows only where the
            # existing one is not partly covered; each then makes its /proc/sys read-only:
            # zygote._init)
            cmd += ["--ro-bind", "/proc/sys", "/proc/sys"]
            cmd += ["--ro-bind-try", "/proc/sysrq-trigger", "/proc/sysrq-trigger"]
        cmd += ["--dev", "/dev"]
        cmd += ["--size", tmp_size, "--tmpfs", "/dev/shm"]
        cmd += ordered
        cmd += ["--remount-ro", "/"]
        cmd += ["--chdir", cwd]
        cmd += list(self.extra_bwrap_args)
        cmd += ["--", *argv]
        return cmd

    # --- cgroup --------------------------------------------------------------------------
    @property
    def cgroup(self) -> SandboxCgroup | None:
        """The running kernel's cgroup (None without a kernel or without cgroups)."""
        return self._sbx_cgroup

    def cgroup_stats(self) -> CgroupStats | None:
        """Memory/pids usage and limit hits of the current kernel's sandbox, or of the
        last one after it was shut down; None if no cgroup was used.

        ``stats.describe()`` is a sentence for the student when a limit stopped
        something (e.g. "Your notebook used more than 6.0 GiB of memory ...").
        """
        if self._sbx_cgroup is not None:
            return self._sbx_cgroup.stats()
        return self.last_cgroup_stats

    def _create_cgroup(self) -> None:
        self._remove_cgroup()  # never two per manager
        if self.cgroup_memory_limit_mb <= 0 and self.cgroup_pids_limit <= 0:
            return  # explicitly off
        try:
            parent = open_parent(self.cgroup_root, self.cgroup_parent)
            self._sbx_cgroup = parent.new_child(
                max(0, self.cgroup_memory_limit_mb) * _MB, max(0, self.cgroup_pids_limit)
            )
        except CgroupUnavailable as exc:
            reason = str(exc)
            if self.require_cgroup:
                raise SandboxUnavailableError(
                    f"No cgroup for the sandbox ({reason}), and "
                    "c.SandboxedKernelManager.require_cgroup is set: refusing to start a "
                    "kernel without a total memory and process limit (run `make setup` as root; "
                    "`make grade ALLOW_NO_CGROUP=1` grades with per-process limits instead)."
                ) from None
            if reason not in _cgroup_warned:
                _cgroup_warned.add(reason)
                as_limit = (
                    f"{self.memory_limit_mb} MiB of address space per process"
                    if self.memory_limit_mb > 0
                    else "nothing"
                )
                self.log.warning(
                    "Sandbox cgroup limits are NOT enforced (%s). The total memory of a "
                    "notebook is bounded only per process (RLIMIT_AS: %s), and the number "
                    "of processes is not bounded (a fork bomb runs until the cell times "
                    "out). Set c.SandboxedKernelManager.require_cgroup = True to refuse "
                    "instead.",
                    reason,
                    as_limit,
                )

    def _remove_cgroup(self) -> None:
        cg, self._sbx_cgroup = self._sbx_cgroup, None
        if cg is None:
            return
        try:
            self.last_cgroup_stats = cg.destroy()
        except Exception:  # noqa: BLE001
            self.log.exception("Could not remove the sandbox cgroup %s", cg.name)

    # --- jupyter_client hooks ------------------------------------------------------------
    def _refuse_unless_unprivileged(self) -> None:
        """Kernels start only as an unprivileged account, in a user namespace of their own."""
        if os.geteuid() == 0:
            # The kernel's uid maps to the grader's; and run by root, bwrap covers parts of /proc
            # (/proc/irq, /proc/bus), after which Linux refuses a forked kernel its own /proc.
            raise SandboxUnavailableError(
                "kernels start as an unprivileged account; run as interp-grader (make grade does)")
        if self.sandbox_uid is None:
            raise SandboxUnavailableError(
                "kernels run as c.SandboxedKernelManager.sandbox_uid in a user namespace of their "
                "own (each forked from the zygote makes one): it may not be None")

    async def _async_pre_start_kernel(self, **kw: t.Any):  # type: ignore[override]
        self._refuse_unless_unprivileged()
        find_bwrap(self.bwrap_path)  # fail early with the install hint
        _find_prlimit(self.prlimit_path)
        if self.transport != "ipc":
            raise SandboxUnavailableError(
                "SandboxedKernelManager needs transport='ipc' (the sandbox has no network)."
            )
        self._ensure_run_dir()
        assert self._sbx_run_dir is not None
        if self._sbx_log is None or self._sbx_log.closed:
            self._sbx_log = open(os.path.join(self._sbx_run_dir, "kernel.log"), "ab")  # noqa: SIM115
        self._sbx_log_mark = 0
        self.last_command = None
        try:
            self._create_cgroup()
        except BaseException:
            self._remove_run_dir()
            raise
        try:
            # writes the connection file; the kernelspec's command is never run (the kernel is
            # forked from the zygote: _async_launch_kernel)
            kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
            if not isinstance(self.provisioner, LocalProvisioner):
                raise SandboxUnavailableError(
                    "kernel provisioner %r is not jupyter_client's LocalProvisioner; "
                    "SandboxedKernelManager starts its kernels from its zygote only"
                    % type(self.provisioner).__name__
                )
        except BaseException:
            self._remove_cgroup()
            raise
        return kernel_cmd, kw

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: t.Any) -> None:  # type: ignore[override]
        try:
            await self._async_launch_from_zygote(kw.get("cwd"))
        except BaseException:
            self._remove_cgroup()  # e.g. joining the cgroup failed: nothing of the kernel runs
            raise

    # --- zygote ---------------------------------------------------------------------------
    def _zygote_env(self, env: dict[str, str], runs: str) -> dict[str, str]:
        """The zygote's environment: the kernel's, less what names one run's folders."""
        env = {k: v for k, v in env.items() if not _zygote.under(v, runs)} if runs else dict(env)
        # No thread may exist when the zygote forks (only the forking thread survives, with the
        # others' locks held): importing torch starts an OpenMP pool unless it is limited to one
        # thread, pyarrow a jemalloc thread unless it uses the system allocator. Each kernel sets
        # its own thread count again (zygote._kernel).
        env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                    "ARROW_DEFAULT_MEMORY_POOL": "system",
                    "JE_ARROW_MALLOC_CONF": "background_thread:false"})
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        if os.path.dirname(_PACKAGE_DIR) not in paths:
            env["PYTHONPATH"] = os.pathsep.join([*paths, os.path.dirname(_PACKAGE_DIR)])
        return env

    def _zygote_argv(self) -> list[str]:
        python = self.kernel_spec.argv[0] if self.kernel_spec and self.kernel_spec.argv else sys.executable
        if python in ("python", "python3", "{python}") or not os.path.isabs(python):
            python = sys.executable
        return [python, "-c", _zygote.LAUNCHER, "{CTL_FD}", *self.zygote_preload]

    def _zygote_for(self) -> _zygote.Zygote:
        runs = _zygote.runs_root()
        cmd = self.build_sandbox_command(self._zygote_argv(), zygote_runs=runs)
        key = (tuple(cmd), self.cgroup_memory_limit_mb, self.cgroup_pids_limit, self.cgroup_parent,
               self.cgroup_root)
        with _zygotes_lock:
            z = _zygotes.get(key)
            if z is not None and z.alive():
                return z
            if z is not None:
                z.stop()
                del _zygotes[key]
            while len(_zygotes) >= _MAX_ZYGOTES:
                _zygotes.pop(next(iter(_zygotes))).stop()
            cgroup = None
            if self.cgroup_memory_limit_mb > 0 or self.cgroup_pids_limit > 0:
                try:
                    parent = open_parent(self.cgroup_root, self.cgroup_parent)
                    cgroup = parent.new_child(max(0, self.cgroup_memory_limit_mb) * _MB,
                                              max(0, self.cgroup_pids_limit))
                except CgroupUnavailable as exc:
                    if self.require_cgroup:
                        raise SandboxUnavailableError(
                            f"No cgroup for the zygote ({exc}): run `make setup` as root; `make grade "
                            "ALLOW_NO_CGROUP=1` grades with per-process limits instead") from None
            log_path = os.path.join(runs, f"zygote-{len(_zygotes)}-{os.getpid()}.log")
            z = _zygote.Zygote(key, cmd, cgroup, log_path)
            t0 = time.monotonic()
            z.start(timeout=self.zygote_start_timeout)
            self.log.info("Zygote ready in %.1f s (imports %.1f s)", time.monotonic() - t0,
                          z.info.get("import_s", 0.0))
            missing = [name for name in self.zygote_preload if name in (z.info.get("missing") or [])]
            if missing:
                self.log.warning("The zygote could not import %s (SandboxedKernelManager.zygote_preload): "
                                 "each kernel that needs it imports it itself", ", ".join(missing))
            _zygotes[key] = z
            return z

    async def _async_launch_from_zygote(self, cwd: str | None) -> None:
        runs = _zygote.runs_root()
        cwd = _real(cwd) if cwd else self.socket_dir
        assert self.socket_dir is not None and cwd is not None and self._sbx_log is not None
        binds: list[tuple[str, bool]] = [*self._covered_binds(self._zygote_argv(), runs), (self.socket_dir, True)]
        for paths, writable in ((self.readonly_paths, False), (self.writable_paths, True)):
            binds += [(_real(p), writable) for p in paths if _zygote.under(p, runs)]
        if cwd != self.socket_dir:
            if not _zygote.under(cwd, runs):
                raise SandboxUnavailableError(
                    f"a zygote kernel's working folder must be under its runs folder {runs}, "
                    f"not {cwd}")
            binds.append((cwd, self.writable_cwd))
        seen: dict[str, bool] = {}
        for path, writable in binds:
            seen[path] = seen.get(path, False) or writable
        request = {
            "runs": runs,
            "binds": sorted(seen.items(), key=lambda b: _depth(b[0])),
            "cwd": cwd,
            "env": self._sandbox_env(),
            "connection_file": self.connection_file,
            "tmpfs_size": max(1, self.tmpfs_size_mb) * _MB,
            "home": _real(self.home_dir or os.path.expanduser("~")),
            "hostname": self.hostname,
        }
        z = await asyncio.to_thread(self._zygote_for)
        cgroup = self._sbx_cgroup

        def join(pid: int) -> None:
            if cgroup is not None:
                cgroup.add(pid)
                if not cgroup.contains(pid):
                    raise SandboxUnavailableError(f"kernel {pid} is not in its cgroup")

        proc = await asyncio.to_thread(z.spawn, request, self._sbx_log.fileno(), join)
        self.last_command = list(z.command)
        prov = self.provisioner
        assert prov is not None
        prov.process = proc  # type: ignore[attr-defined]
        prov.pid = proc.pid  # type: ignore[attr-defined]
        prov.pgid = None  # type: ignore[attr-defined]
        prov.cwd = cwd  # type: ignore[attr-defined]
        self._reconcile_connection_info(prov.connection_info)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        try:
            await super()._async_cleanup_resources(restart=restart)
        finally:
            # kills whatever the kernel left behind in its cgroup; a restart makes a new one
            self._remove_cgroup()
            if not restart:
                self._remove_run_dir()

    def _remove_run_dir(self) -> None:
        if self._sbx_run_dir:
            self._sbx_last_log = self.kernel_log_tail()
        if self._sbx_log is not None:
            try:
                self._sbx_log.close()
            except OSError:
                pass
            self._sbx_log = None
        if self._sbx_run_dir:
            shutil.rmtree(self._sbx_run_dir, ignore_errors=True)
            self._sbx_run_dir = None

    def __del__(self) -> None:
        try:
            self._remove_cgroup()
        except Exception:  # noqa: BLE001
            pass
        try:
            self._remove_run_dir()
        except Exception:  # noqa: BLE001
            pass
        try:
            super().__del__()
        except Exception:  # noqa: BLE001
            pass
