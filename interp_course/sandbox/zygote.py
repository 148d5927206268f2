"""A pre-imported kernel *zygote*: one sandboxed process that imports the heavy libraries once and
forks one freshly sandboxed kernel per submission. It is the only way a kernel starts
(``interp_course.sandbox.kernel_manager.SandboxedKernelManager``), in grading and in the tests alike.

Why: a sandboxed kernel spends ~12 s importing torch and transformer_lens before a student's
first line runs. The zygote pays that once per grader process; each kernel is a ``fork`` of it.

What a zygote is and holds
--------------------------
The zygote is started by the grader as a sandboxed command (``prlimit`` + ``bwrap``: read-only
system, venv, package and model folders, no network, unprivileged uid, its own cgroup, cleared
environment), but instead of a kernel it runs :func:`serve`: it imports ``ipykernel`` and the
``preload`` modules (library imports only, such as ``interp_course.plotly_preload``, whose import
makes and drops two figures of made-up numbers so that plotly's lazily imported classes are
imported too: never checks, solutions, reference results or any student's data; it never runs
student code; a module it cannot import is skipped and reported) and waits on a socket for spawn
requests. The one thing it sees beyond a kernel's view is the *runs folder* ``R``
(:func:`runs_root`), where the grader makes each run's folders (connection file and sockets, inbox,
outbox, scratch). It is not forked from the grader (the grader starts it with bwrap and talks to
it over a socketpair).

Per submission (``spawn``)::

    zygote ──fork──> C1  (zygote's namespaces)   sends its pid (SCM_CREDENTIALS) to the grader,
                     │                            which moves it into the run's own cgroup, then
                     │                            says "go"; C1 unshares user, mount, pid, net,
                     │                            ipc, uts and cgroup namespaces, and forks
                     └──fork──> C2  (pid 1, "init") new /proc, fresh tmpfs on /tmp, /dev/shm and
                                │                   $HOME, a new devpts, ``R`` covered by an empty
                                │                   tmpfs with only this run's folders bound back,
                                │                   loopback up, no further user namespaces
                                │                   (max_user_namespaces = 1, as bwrap's
                                │                   --disable-userns), then a second user namespace
                                │                   (all mounts locked), all capabilities dropped,
                                │                   no_new_privs
                                └──fork──> C3       the kernel: ``IPKernelApp`` with the grader's
                                                    connection file, in the run's scratch folder,
                                                    with the run's environment

C1 is what the grader sees as the kernel process (its pid, via a pidfd): it exits with C2's
status (128 + signal for a killed kernel, as bwrap). Killing C1 kills C2 (``PDEATHSIG``) and
with it the whole pid namespace; the run's cgroup is emptied and removed.
The zygote itself dies with the grader (bwrap ``--die-with-parent``).

Shared with the zygote, by construction of ``fork``: the memory image of the imported libraries
(copy-on-write; pages a kernel writes are its own and charged to its own cgroup; the pages it only
reads stay charged to the zygote's cgroup). Shared between kernels: nothing writable — each one
has its own tmpfs mounts, namespaces, cgroup and run folder.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import json
import os
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import typing as t

__all__ = ["ZygoteError", "runs_root", "serve"]

# ----------------------------------------------------------------------------------- syscalls
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC = 32, 4096, 8192, 16384
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 1024, 2048, 1 << 21, 1 << 24
MS_PRIVATE = 1 << 18

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


class ZygoteError(RuntimeError):
    """A zygote could not be started or could not start a kernel."""


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(
            src.encode() if src else None,
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {fstype or src} on {target}",
    )


def _prctl(option: int, arg2: int = 0) -> None:
    _check(_libc.prctl(option, arg2, 0, 0, 0), f"prctl {option}")


def _mount_flags(path: str) -> int:
    """The per-mount flags of ``path`` as MS_* (a bind remount must keep the locked ones)."""
    f = os.statvfs(path).f_flag
    out = 0
    for st, ms in ((os.ST_RDONLY, MS_RDONLY), (os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV),
                   (os.ST_NOEXEC, MS_NOEXEC), (os.ST_NOATIME, MS_NOATIME),
                   (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME)):
        if f & st:
            out |= ms
    return out


def _remount_ro(path: str) -> None:
    _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _mount_flags(path))


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _map_ids(uid: int, gid: int) -> None:
    """Map ``uid``/``gid`` of the parent user namespace to themselves (one line: unprivileged)."""
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
    _write("/proc/self/gid_map", f"{gid} {gid} 1\n")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _drop_caps() -> None:
    """No capabilities at all (bounding, ambient, effective, permitted, inheritable), no_new_privs."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
    except OSError:
        last = 63
    for cap in range(last + 1):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() != errno.EINVAL:
            raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")
    _prctl(PR_SET_NO_NEW_PRIVS, 1)


def _loopback_up() -> None:
    """Bring ``lo`` up in the new network namespace (as bwrap does)."""
    import fcntl

    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sh14x", b"lo", 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sh14x", b"lo", flags | IFF_UP))


def _close_fds_except(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


# ------------------------------------------------------------------------------ runs folder
_runs_root: str | None = None
_runs_lock = threading.Lock()


def runs_root() -> str:
    """This grader process's runs folder (made once, mode 0700): bound into its zygotes, where
    each run's folders are made; a kernel sees only its own run's folders of it."""
    global _runs_root
    with _runs_lock:
        if _runs_root is None or not os.path.isdir(_runs_root):
            _runs_root = os.path.realpath(tempfile.mkdtemp(prefix="izyg-"))
        return _runs_root


def remove_runs_root() -> None:
    """Remove the runs folder (zygote logs, anything a run left) without following links."""
    global _runs_root
    with _runs_lock:
        root, _runs_root = _runs_root, None
    if root and os.path.isdir(root):
        from pathlib import Path

        from interp_course.sandbox import workdir

        try:
            workdir.remove_tree(Path(root))
        except OSError:
            pass


def under(path: str, root: str) -> bool:
    path = os.path.realpath(path)
    return path == root or path.startswith(root.rstrip("/") + "/")


# ============================================================================== zygote side
def serve(ctl_fd: int, preload: list[str]) -> None:
    """The zygote's main loop (inside bwrap): import, report, then fork a kernel per request."""
    t0 = time.monotonic()
    if sys.path and sys.path[0] == "":
        del sys.path[0]
    import importlib

    from interp_course.patches.lean_imports import skip_iri_grammars

    # ~0.9 s of the zygote's imports, on the critical path of every batch's start (plotly's
    # renderers import nbformat, so jsonschema); the kernels inherit it (see lean_imports).
    skip_iri_grammars()
    importlib.import_module("ipykernel.kernelapp")
    importlib.import_module("ipykernel.ipkernel")
    missing = []
    for name in preload:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # renamed or not installed: a kernel that needs it imports it itself
            missing.append(name)
            sys.stderr.write(f"zygote: could not import {name}: {exc}\n")
    # The imported libraries live as long as the kernel: keep the garbage collector of every
    # kernel from walking (and so copying, page by page) the zygote's millions of objects.
    gc.collect()
    gc.freeze()
    ctl = socket.socket(fileno=ctl_fd)
    threads = len(os.listdir("/proc/self/task"))
    ctl.send(json.dumps({"ready": True, "import_s": round(time.monotonic() - t0, 3),
                         "threads": threads, "pid": os.getpid(), "missing": missing}).encode())
    if threads != 1:
        # fork() keeps only the calling thread; locks held by the others would stay locked
        sys.stderr.write(f"zygote: {threads} threads after the imports; refusing to fork\n")
        return
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    zygote_pid = os.getpid()
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(ctl, 65536, 4)
        except InterruptedError:
            continue
        if not msg:
            return  # the grader closed its end
        try:
            request = json.loads(msg)
        except ValueError:
            for fd in fds:
                os.close(fd)
            continue
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                if os.getppid() != zygote_pid:
                    os._exit(1)
                code = _monitor(request, fds[0], fds[1])
            except BaseException as exc:  # noqa: BLE001
                try:
                    os.write(fds[1], f"zygote child: {type(exc).__name__}: {exc}\n".encode())
                except OSError:
                    pass
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)


def _monitor(req: dict, sock_fd: int, log_fd: int) -> int:
    """C1: handshake with the grader, unshare, fork the pid namespace's init, report its status."""
    _close_fds_except({0, 1, 2, sock_fd, log_fd})
    os.setpgid(0, 0)
    sock = socket.socket(fileno=sock_fd)
    uid, gid = os.getuid(), os.getgid()
    creds = struct.pack("iII", os.getpid(), uid, gid)
    sock.sendmsg([b"hello"], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)])
    if sock.recv(16) != b"go":
        return 1  # the grader could not put us in the run's cgroup
    _unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC
             | CLONE_NEWUTS | CLONE_NEWCGROUP)
    _map_ids(uid, gid)
    init = os.fork()
    if init == 0:
        code = 1
        try:
            code = _init(req, sock_fd, log_fd, uid, gid)
        except BaseException as exc:  # noqa: BLE001
            try:
                os.write(log_fd, f"zygote child setup failed: {type(exc).__name__}: {exc}\n".encode())
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(log_fd)
    try:
        _drop_caps()
    except OSError:
        pass
    while True:
        try:
            _, status = os.waitpid(init, 0)
            break
        except InterruptedError:
            continue
    code = _exit_code(status)
    try:
        sock.send(f"exit {code}".encode())
    except OSError:
        pass
    return code


def _init(req: dict, sock_fd: int, log_fd: int, uid: int, gid: int) -> int:
    """C2, pid 1 of the new pid namespace: build the run's view, lock it, fork the kernel, reap."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.close(sock_fd)
    _setup_mounts(req)
    host = str(req.get("hostname") or "sandbox").encode()
    _check(_libc.sethostname(host, len(host)), "sethostname")
    _loopback_up()
    # no user namespaces below this one but the next (bwrap's --disable-userns does the same)
    _write("/proc/sys/user/max_user_namespaces", "1")
    # read-only, as in any sandbox of ours: the sandbox uid maps to the grader's, and for root Linux
    # grants sysctl writes (e.g. kernel.core_pattern) and sysrq by uid alone
    for path in ("/proc/sys", "/proc/sysrq-trigger"):
        if os.path.exists(path):
            _mount(path, path, None, MS_BIND | MS_REC)
            _remount_ro(path)
    # a second user namespace: every mount made above is locked (cannot be undone from inside)
    _unshare(CLONE_NEWUSER | CLONE_NEWNS)
    _map_ids(uid, gid)
    _drop_caps()
    kernel = os.fork()
    if kernel == 0:
        code = 1
        try:
            code = _kernel(req, log_fd)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:  # noqa: BLE001
            try:
                os.write(2, f"kernel failed: {type(exc).__name__}: {exc}\n".encode())
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(log_fd)
    _close_fds_except({0, 1, 2})
    while True:  # reap everything re-parented to us; leave with the kernel's status
        try:
            pid, status = os.waitpid(-1, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 1
        if pid == kernel:
            return _exit_code(status)


def _setup_mounts(req: dict) -> None:
    """Fresh private tmpfs mounts; the runs folder covered, with only this run's folders in it."""
    runs = req["runs"]
    tmp_size = int(req["tmpfs_size"])
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # /dev/shm first: it holds the staging points while /tmp and $HOME are replaced
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_size},mode=1777")
    staged = []
    for i, (path, writable) in enumerate(req["binds"]):
        stage = f"/dev/shm/.run{i}"
        os.mkdir(stage, 0o700)
        _mount(path, stage, None, MS_BIND | MS_REC)
        staged.append((stage, path, writable))
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_size},mode=1777")
    if req.get("home"):
        _mount("tmpfs", req["home"], "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_size},mode=0700")
    try:
        _mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
    except OSError:
        _mount("tmpfs", "/dev/pts", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0755")
    if os.path.isdir(runs):
        # still visible (not under /tmp or $HOME): cover it with an empty tmpfs of its own
        _mount("tmpfs", runs, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    else:
        os.makedirs(runs, 0o755)  # in the fresh /tmp or $HOME: nothing of the old folder there
    for stage, path, _ in staged:
        os.makedirs(path, 0o755, exist_ok=True)
        _mount(stage, path, None, MS_MOVE)
        os.rmdir(stage)
    for _stage, path, writable in sorted(staged, key=lambda s: s[1].count("/")):
        if not writable:
            _remount_ro(path)
    if under(runs, "/tmp") or (req.get("home") and under(runs, req["home"])):
        pass  # the folders leading to the run live in this kernel's own tmpfs
    else:
        _remount_ro(runs)


def _restore_threads(env: dict) -> None:
    """The zygote imported with one thread (see SandboxedKernelManager._zygote_env); give the
    kernel the count a fresh kernel with this environment would have."""
    n = None
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        try:
            n = int(env[name])
            break
        except (KeyError, ValueError):
            continue
    if n is None or n < 1:
        n = len(os.sched_getaffinity(0))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(env.get("OPENBLAS_NUM_THREADS") or n), user_api="blas")
    except Exception:  # noqa: BLE001 - optional: numpy's BLAS then keeps one thread
        pass


def _kernel(req: dict, log_fd: int) -> int:
    """C3: the kernel itself."""
    os.setsid()
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    _close_fds_except({0, 1, 2})
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    os.umask(0o022)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    # fresh random state, as a fresh interpreter would have (Python's own `random` reseeds at fork)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    _restore_threads(req["env"])
    # IPython's input history in memory, as a kernel whose $HOME cannot hold it has it: a kernel
    # lives for one notebook, and a history file costs a thread that IPython stops before every
    # fork and starts again at the next cell, which then fails ("can't start new thread") when the
    # notebook's forks hold the sandbox at its pids limit.
    argv = ["-f", req["connection_file"], "--HistoryManager.hist_file=:memory:"]
    sys.argv = ["ipykernel_launcher", *argv]
    from ipykernel import kernelapp as app

    app.launch_new_instance(argv=argv)
    return 0


# ============================================================================== grader side
class ZygoteChild:
    """The kernel process as ``subprocess.Popen`` sees it: C1, via its pid and a pidfd."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int, pidfd: int, sock: socket.socket) -> None:
        self.pid = pid
        self._pidfd = pidfd
        self._sock = sock
        self.returncode: int | None = None

    def _status_message(self) -> int | None:
        try:
            msg = self._sock.recv(64, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return None
        if msg.startswith(b"exit "):
            try:
                return int(msg[5:])
            except ValueError:
                return 1
        return None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        import select

        code = self._status_message()
        if code is None:
            ready, _, _ = select.select([self._pidfd], [], [], 0)
            if not ready:
                return None
            code = self._status_message()
            if code is None:
                code = 128 + signal.SIGKILL  # C1 itself was killed: it could not report
        self.returncode = code
        self._close()
        return code

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                import subprocess

                raise subprocess.TimeoutExpired("zygote kernel", timeout)
            time.sleep(0.02)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is not None:
            return
        try:
            signal.pidfd_send_signal(self._pidfd, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def _close(self) -> None:
        for closer in (lambda: os.close(self._pidfd), self._sock.close):
            try:
                closer()
            except OSError:
                pass
        self._pidfd = -1

    def __del__(self) -> None:
        if self._pidfd >= 0:
            self._close()


class Zygote:
    """One running zygote (grader side). Start with :meth:`start`; :meth:`spawn` per kernel."""

    def __init__(self, key: t.Hashable, command: list[str], cgroup, log_path: str) -> None:
        self.key = key
        self.command = command
        self.cgroup = cgroup
        self.log_path = log_path
        self.process = None
        self.info: dict = {}
        self._ctl: socket.socket | None = None
        self._lock = threading.Lock()

    def start(self, timeout: float = 180.0) -> None:
        import subprocess

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cmd = [a.replace("{CTL_FD}", str(theirs.fileno())) for a in self.command]
        log = open(self.log_path, "ab")  # noqa: SIM115
        started = threading.Event()
        failure: list[BaseException] = []

        def launch() -> None:
            # PDEATHSIG (bwrap --die-with-parent) fires when the *thread* that forked exits:
            # start the zygote from a thread that lives as long as this process.
            try:
                self.process = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    pass_fds=(theirs.fileno(),), env={"PATH": os.environ.get("PATH", os.defpath)},
                    preexec_fn=self.cgroup.join if self.cgroup is not None else None,
                    start_new_session=True,
                )
            except BaseException as exc:  # noqa: BLE001
                failure.append(exc)
            finally:
                started.set()
            threading.Event().wait()  # keep this thread (the zygote's parent) alive

        threading.Thread(target=launch, name="zygote-parent", daemon=True).start()
        started.wait()
        theirs.close()
        log.close()
        if failure:
            raise ZygoteError(f"could not start the zygote: {failure[0]}")
        ours.settimeout(timeout)
        try:
            msg = ours.recv(65536)
        except socket.timeout:
            self.stop()
            raise ZygoteError(f"the zygote did not get ready within {timeout:.0f} s") from None
        if not msg:
            self.stop()
            raise ZygoteError(f"the zygote exited during its imports (log: {self.tail()})")
        self.info = json.loads(msg)
        if self.info.get("threads") != 1:
            self.stop()
            raise ZygoteError(f"the zygote has {self.info.get('threads')} threads after its imports; "
                              "forking it would be unsafe")
        ours.settimeout(None)
        self._ctl = ours

    def tail(self, nbytes: int = 2000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - nbytes))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None and self._ctl is not None

    def spawn(self, request: dict, log_fd: int, join_cgroup: t.Callable[[int], None] | None,
              timeout: float = 30.0) -> ZygoteChild:
        """Fork a kernel for ``request``; ``join_cgroup(host_pid)`` moves it into its cgroup
        before it unshares or runs anything of the student's."""
        if not self.alive():
            raise ZygoteError("the zygote is not running")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            with self._lock:
                assert self._ctl is not None
                socket.send_fds(self._ctl, [json.dumps(request).encode()], [theirs.fileno(), log_fd])
            theirs.close()
            ours.settimeout(timeout)
            size = struct.calcsize("iII")
            msg, anc, _flags, _addr = ours.recvmsg(64, socket.CMSG_SPACE(size))
            pid = None
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid, uid, _gid = struct.unpack("iII", data[:size])
                    if uid != os.getuid():
                        raise ZygoteError(f"zygote child reported uid {uid}")
            if msg != b"hello" or not pid:
                raise ZygoteError(f"the zygote did not start a kernel (log: {self.tail()})")
            pidfd = os.pidfd_open(pid)
            try:
                if join_cgroup is not None:
                    join_cgroup(pid)
                ours.send(b"go")
            except BaseException:
                try:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                finally:
                    os.close(pidfd)
                raise
            ours.settimeout(None)
            return ZygoteChild(pid, pidfd, ours)
        except BaseException:
            ours.close()
            raise

    def stop(self) -> None:
        ctl, self._ctl = self._ctl, None
        if ctl is not None:
            ctl.close()  # the zygote leaves its loop on EOF
        proc = self.process
        if proc is not None and proc.poll() is None:
            try:
                proc.wait(timeout=2)
            except Exception:  # noqa: BLE001
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    proc.kill()
                proc.wait()
        if self.cgroup is not None:
            try:
                self.cgroup.destroy()
            except Exception:  # noqa: BLE001
                pass
            self.cgroup = None


# The zygote's entry point inside bwrap: imports nothing from sys.path before it is cleaned.
LAUNCHER = (
    "import sys\n"
    "if sys.path and sys.path[0] == '':\n"
    "    del sys.path[0]\n"
    "from interp_course.sandbox.zygote import serve\n"
    "serve(int(sys.argv[1]), sys.argv[2:])\n"
)
