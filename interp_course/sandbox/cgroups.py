"""One cgroup per sandboxed kernel: a hard cap on its total memory and number of processes.

Why: ``prlimit``'s ``RLIMIT_AS`` is per process (a notebook that forks N children
may use N times the limit) and ``RLIMIT_NPROC`` counts per uid and is ignored for
root.  A cgroup counts every process and thread the sandbox ever starts, and the
memory they use (including files in the sandbox's tmpfs mounts and page cache).

Layout (in each hierarchy used)::

    <cgroup>/<parent>/                           made once: by the grader when it may,
                                                 or by root with prepare_delegated_parent()
    <cgroup>/<parent>/sbx-<grader pid>-<n>-<rnd>/  one per kernel start, removed at its end

``<parent>`` relative (the default ``interp-course``) is under the grader's *own*
cgroup, so a limit the grader itself runs under (container, systemd slice) keeps
bounding its sandboxes; absolute (``/interp-course``) is under the hierarchy's
root: use that with :func:`prepare_delegated_parent`, so that the set-up step and
the grader agree on the place.

At run time only the parent and its children are created or changed, never a
cgroup above them; when the parent cannot get ``memory`` and ``pids`` that way,
cgroups count as unavailable (with the reason).

Both cgroup versions are supported; v2 is used when a cgroup2 mount offers both
``memory`` and ``pids``, else v1 when both controllers are mounted.  Files used:

=================  =======================================  ================================
                   v1 (one hierarchy per controller)        v2 (unified hierarchy)
=================  =======================================  ================================
memory limit       ``memory.limit_in_bytes`` and            ``memory.max``, and
                   ``memory.memsw.limit_in_bytes`` (memory  ``memory.swap.max = 0`` (no swap
                   + swap) where swap accounting exists     on top of the limit) if present
pids limit         ``pids.max``                             ``pids.max``
peak memory        ``memory.max_usage_in_bytes``            ``memory.peak`` (Linux >= 5.19)
OOM kills          ``memory.oom_control``: ``oom_kill``     ``memory.events``: ``oom_kill``
                   (not ``memory.failcnt``: it stayed 0
                   here while the OOM killer fired)
forks refused      ``pids.events``: ``max``                 ``pids.events``: ``max``
join               ``cgroup.procs`` of both hierarchies     ``cgroup.procs``
kill everything    SIGKILL per pid (via pidfd), repeated    ``cgroup.kill`` (>= 5.14), else
                   until ``cgroup.procs`` is empty          the same as v1
=================  =======================================  ================================

**Joining without a race.**  :meth:`SandboxCgroup.join` writes the calling
process's pid into ``cgroup.procs``.  The kernel manager runs it as ``Popen``'s
``preexec_fn``, i.e. in the forked child *before* ``exec``, so prlimit, bwrap and
everything they start are inside the cgroup from their first instruction.

**Delegation** (grader running as an unprivileged user).  Root runs
:func:`prepare_delegated_parent` once (at set-up, or in a systemd
``ExecStartPre=+``): it creates the parent, enables the controllers down to it
and for its children (v2) and chowns the parent directory and its ``cgroup.procs`` (and
``tasks`` on v1; ``cgroup.threads`` and ``cgroup.subtree_control`` on v2) to the
grader's user.  The grader then creates, limits, joins and removes children
itself: files of a cgroup belong to whoever created it.  On v1 that is all.  On
v2 the kernel also requires that an unprivileged process moving a process
between cgroups may write ``cgroup.procs`` of their *common ancestor*: the grader
must therefore itself run inside the delegated parent's subtree (e.g. in
``<parent>/grader``, put there by root or by ``systemd-run -p Delegate=yes``);
:func:`open_parent` checks this and says so when it is not the case.

**How this is tested.**  v1 with real cgroups, bwrap and kernels
(``tests/test_cgroup_limits.py``, on a machine with v1 ``memory`` and ``pids``).
The development machine cannot enforce v2 (its cgroup2 mount has no
controllers), so in the test suite the v2 code path is unit-tested against a
plain directory laid out like a cgroup2 mount: that checks which files are
written and read, with what values, but not the kernel's behaviour.  Outside
the suite, this module was run once on a real cgroup2 host (Linux 6.18, as root,
plain processes, absolute parent): a fork loop was refused at ``pids.max`` 16,
three 60 MiB children under ``memory.max`` 128 MiB got 2 OOM kills
(``memory.events``), ``memory.peak`` read 128 MiB, and ``cgroup.kill`` emptied
the cgroup in 0.02 s; the relative default parent was refused there (the
grader's own cgroup did not enable ``pids``) and nothing was created.
``test_limits_on_plain_processes`` repeats that on whichever version a machine
offers.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import pwd
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field

__all__ = [
    "CgroupParent",
    "CgroupStats",
    "CgroupUnavailable",
    "SandboxCgroup",
    "open_parent",
    "prepare_delegated_parent",
]

log = logging.getLogger(__name__)

V1, V2 = "v1", "v2"
_CONTROLLERS = ("memory", "pids")
_CHILD_PREFIX = "sbx-"
_STALE_AGE_S = 60.0  # an empty child whose grader is gone is removed after this long


class CgroupUnavailable(RuntimeError):
    """No cgroup with memory and pids controllers can be used here (the message says why)."""


# ----------------------------------------------------------------------------- small file helpers
def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _write(path: str, value: str) -> None:
    # One write() per value, as cgroup files want.  O_CREAT changes nothing on cgroupfs
    # (control files exist or cannot be created) but lets a plain directory stand in for
    # a cgroup2 mount in the tests.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read_int(path: str) -> int | None:
    text = _read(path)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _read_keyed(path: str) -> dict[str, int]:
    """``key value`` lines (memory.events, pids.events, memory.oom_control) as a dict."""
    out: dict[str, int] = {}
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def _unescape_mount(path: str) -> str:
    # /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and path[i + 1 : i + 4].isdigit() and i + 3 < len(path):
            out.append(chr(int(path[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def _join(base: str, rel: str) -> str:
    rel = rel.strip("/")
    return os.path.join(base, rel) if rel else base


# ----------------------------------------------------------------------------- stats
def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / 2**20:.0f} MiB"


@dataclass(frozen=True)
class CgroupStats:
    """What one sandbox used, read from its cgroup (counters cover the cgroup's whole life).

    ``None`` means "not known" (file missing, e.g. ``memory.peak`` before Linux 5.19)
    or, for limits, "no limit".
    """

    version: str
    memory_limit: int | None  # bytes
    memory_current: int | None
    memory_peak: int | None
    oom_kills: int  # processes the OOM killer killed inside this cgroup
    pids_limit: int | None
    pids_current: int | None
    pids_peak: int | None  # pids.peak where the kernel has it
    pids_limit_hits: int  # forks/clones refused because of pids.max

    @property
    def limit_hit(self) -> bool:
        """True if a process was OOM-killed or a fork was refused."""
        return bool(self.oom_kills or self.pids_limit_hits)

    def describe(self) -> str:
        """One sentence for the student, or "" if no limit stopped anything."""
        parts = []
        if self.oom_kills:
            parts.append(
                f"used more than {_fmt_bytes(self.memory_limit)} of memory (all its processes "
                "together), so the system stopped "
                + ("a process" if self.oom_kills == 1 else f"{self.oom_kills} processes")
            )
        if self.pids_limit_hits:
            parts.append(
                f"tried to run more than {self.pids_limit} processes/threads at once "
                f"({self.pids_limit_hits} refused)"
            )
        return ("Your notebook " + "; it ".join(parts) + ".") if parts else ""


# ----------------------------------------------------------------------------- hierarchies
@dataclass
class _Hierarchy:
    version: str
    mounts: dict[str, str]  # controller -> mount point (v2: one entry, "unified")
    own: dict[str, str]  # controller -> directory of the calling process's own cgroup


def _own_cgroups() -> tuple[dict[str, str], str | None]:
    """(v1 controller -> path, v2 path) from /proc/self/cgroup."""
    v1: dict[str, str] = {}
    v2 = None
    for line in (_read("/proc/self/cgroup") or "").splitlines():
        hid, _, rest = line.partition(":")
        ctrls, _, path = rest.partition(":")
        if hid == "0" and ctrls == "":
            v2 = path
        for c in ctrls.split(","):
            if c:
                v1[c] = path
    return v1, v2


def _own_dir(mount: str, mount_root: str, own_path: str | None) -> str:
    """The directory of our own cgroup under ``mount`` (the mount root if unknown)."""
    if own_path is None:
        return mount
    mount_root = mount_root.rstrip("/")
    if mount_root and not (own_path == mount_root or own_path.startswith(mount_root + "/")):
        return mount
    d = _join(mount, own_path[len(mount_root):])
    return d if os.path.isdir(d) else mount


def _detect(root: str = "") -> _Hierarchy:
    """Find a usable hierarchy: v2 with memory+pids, else v1 with both mounted."""
    own_v1, own_v2 = _own_cgroups()
    if root:
        # an explicit mount point (or a directory laid out like one, in tests)
        if os.path.isfile(os.path.join(root, "cgroup.controllers")):
            have = set((_read(os.path.join(root, "cgroup.controllers")) or "").split())
            missing = [c for c in _CONTROLLERS if c not in have]
            if missing:
                raise CgroupUnavailable(f"cgroup2 at {root} does not offer {', '.join(missing)}")
            return _Hierarchy(V2, {"unified": root}, {"unified": _own_dir(root, "/", own_v2)})
        dirs = {c: os.path.join(root, c) for c in _CONTROLLERS}
        if all(os.path.isfile(os.path.join(d, "cgroup.procs")) for d in dirs.values()):
            own = {c: _own_dir(d, "/", own_v1.get(c)) for c, d in dirs.items()}
            return _Hierarchy(V1, dirs, own)
        raise CgroupUnavailable(
            f"{root} is neither a cgroup2 mount nor a directory holding v1 "
            "'memory' and 'pids' hierarchies"
        )

    v2_found: list[str] = []
    v1: dict[str, tuple[str, str]] = {}
    for line in (_read("/proc/self/mountinfo") or "").splitlines():
        left, _, right = line.partition(" - ")
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 3:
            continue
        mroot, mpoint, fstype = _unescape_mount(lf[3]), _unescape_mount(lf[4]), rf[0]
        if fstype == "cgroup2":
            have = set((_read(os.path.join(mpoint, "cgroup.controllers")) or "").split())
            if all(c in have for c in _CONTROLLERS):
                own = _own_dir(mpoint, mroot, own_v2)
                return _Hierarchy(V2, {"unified": mpoint}, {"unified": own})
            v2_found.append(f"cgroup2 at {mpoint} offers only {sorted(have) or 'nothing'}")
        elif fstype == "cgroup":
            opts = set(rf[2].split(","))
            for c in _CONTROLLERS:
                if c in opts and c not in v1:
                    v1[c] = (mpoint, mroot)
    if all(c in v1 for c in _CONTROLLERS):
        mounts = {c: v1[c][0] for c in _CONTROLLERS}
        own = {c: _own_dir(v1[c][0], v1[c][1], own_v1.get(c)) for c in _CONTROLLERS}
        return _Hierarchy(V1, mounts, own)
    found = v2_found + [f"v1 '{c}' at {v1[c][0]}" for c in v1]
    raise CgroupUnavailable(
        "no cgroup hierarchy with both 'memory' and 'pids' controllers is mounted"
        + (f" (found: {'; '.join(found)})" if found else "")
    )


def _parent_dirs(h: _Hierarchy, parent: str) -> dict[str, str]:
    if not parent.strip("/"):
        raise ValueError("the cgroup parent must name a directory, not the root")
    base = h.mounts if parent.startswith("/") else h.own
    return {c: _join(d, parent) for c, d in base.items()}


def _v2_enable(cgroup: str) -> None:
    """Enable memory+pids for the children of ``cgroup`` (its ``cgroup.subtree_control``)."""
    sc = os.path.join(cgroup, "cgroup.subtree_control")
    missing = [c for c in _CONTROLLERS if c not in (_read(sc) or "").split()]
    if not missing:
        return
    try:
        _write(sc, " ".join("+" + c for c in missing))
    except OSError as exc:
        hint = (
            " (cgroup v2 gives no controllers to the children of a cgroup that holds "
            "processes itself)"
            if exc.errno == errno.EBUSY
            else ""
        )
        raise CgroupUnavailable(
            f"cannot enable {', '.join(missing)} in {sc}: {exc.strerror}{hint}"
        ) from None


def _v2_enable_down_to(mount: str, target: str) -> None:
    """Set-up only: enable memory+pids in every cgroup from the mount root down to
    ``target`` (changes cgroups the grader does not own, so never done at run time)."""
    rel = os.path.relpath(target, mount)
    path = mount
    _v2_enable(path)
    for part in [] if rel == "." else rel.split("/"):
        path = os.path.join(path, part)
        _v2_enable(path)


# ----------------------------------------------------------------------------- parent
# (kind, dirs) -> [the dirs this process created, live children]; an auto-created parent is
# removed again when its last child goes, so nothing is left in the grader's cgroup.
_parents: dict[tuple[str, tuple[str, ...]], list] = {}
_parents_lock = threading.Lock()
_counter = itertools.count(1)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CgroupParent:
    """The parent cgroup under which each sandbox gets its own child (see :func:`open_parent`)."""

    def __init__(self, hierarchy: _Hierarchy, dirs: dict[str, str]) -> None:
        self.version = hierarchy.version
        self.hierarchy = hierarchy
        self.dirs = dirs  # controller (v2: "unified") -> directory of the parent cgroup
        self._key = (self.version, tuple(sorted(dirs.values())))

    def __repr__(self) -> str:
        return f"CgroupParent({self.version}, {sorted(self.dirs.values())})"

    def _acquire(self) -> None:
        """Make sure the parent exists and is usable, and count one more live child.

        One lock covers both so that :meth:`_release` of another thread cannot remove
        an auto-created parent between the check and the child's mkdir.  Only the
        parent itself is created or changed: cgroups above it are left as they are.
        """
        with _parents_lock:
            state = _parents.setdefault(self._key, [[], 0])  # [the dirs we made, live children]
            made: list[str] = []
            try:
                if self.version == V2:
                    self._v2_check_available()
                for d in self.dirs.values():
                    if os.path.isdir(d):
                        continue
                    try:
                        os.mkdir(d)
                        made.append(d)
                    except FileExistsError:
                        pass
                    except OSError as exc:
                        raise CgroupUnavailable(
                            f"cannot create the parent cgroup {d}: {exc.strerror} (as root, "
                            "run interp_course.sandbox.cgroups.prepare_delegated_parent(<grader user>) "
                            "once)"
                        ) from None
                if self.version == V2:
                    _v2_enable(self.dirs["unified"])
                    self._v2_check_migration()
                for d in self.dirs.values():
                    if not os.access(d, os.W_OK | os.X_OK):
                        raise CgroupUnavailable(
                            f"the parent cgroup {d} is not writable by uid {os.geteuid()} (as "
                            "root, run interp_course.sandbox.cgroups.prepare_delegated_parent(<grader "
                            "user>))"
                        )
            except BaseException:
                for d in reversed(made):  # leave nothing behind in cgroups we do not own
                    try:
                        os.rmdir(d)
                    except OSError:
                        pass
                raise
            state[0] = state[0] or made
            state[1] += 1

    def _v2_check_available(self) -> None:
        # The parent gets the controllers its own parent enables for its children.
        parent = self.dirs["unified"]
        if os.path.isdir(parent):
            where = os.path.join(parent, "cgroup.controllers")
        else:
            where = os.path.join(os.path.dirname(parent), "cgroup.subtree_control")
        have = (_read(where) or "").split()
        missing = [c for c in _CONTROLLERS if c not in have]
        if missing:
            raise CgroupUnavailable(
                f"cgroup v2: {', '.join(missing)} not available to {parent} (per {where}); "
                "as root, run interp_course.sandbox.cgroups.prepare_delegated_parent(<grader user>, "
                "parent='/<name>') and configure the same absolute parent"
            )

    def _v2_check_migration(self) -> None:
        # Moving a process needs write access to cgroup.procs of the common ancestor of
        # its old and new cgroup (root bypasses the check).
        if os.geteuid() == 0:
            return
        mount = self.hierarchy.mounts["unified"]
        own = os.path.relpath(self.hierarchy.own["unified"], mount).split("/")
        dest = os.path.relpath(self.dirs["unified"], mount).split("/")
        common: list[str] = []
        for a, b in zip(own, dest):
            if a != b or a == ".":
                break
            common.append(a)
        ancestor = os.path.join(mount, *common)
        procs = os.path.join(ancestor, "cgroup.procs")
        if not os.access(procs, os.W_OK):
            raise CgroupUnavailable(
                f"cgroup v2: the grader (in {self.hierarchy.own['unified']}) may not move "
                f"processes into {self.dirs['unified']}: {procs} is not writable. Start the "
                "grader inside the delegated parent's subtree (e.g. <parent>/grader, or "
                "systemd-run -p Delegate=yes)"
            )

    def _sweep_stale(self) -> None:
        """Remove empty children left by graders that died without cleaning up."""
        for d in self.dirs.values():
            try:
                names = os.listdir(d)
            except OSError:
                continue
            for name in names:
                if not name.startswith(_CHILD_PREFIX):
                    continue
                try:
                    pid = int(name.split("-")[1])
                    age = time.time() - os.stat(os.path.join(d, name)).st_mtime
                except (IndexError, ValueError, OSError):
                    continue
                if pid != os.getpid() and not _pid_alive(pid) and age > _STALE_AGE_S:
                    try:
                        os.rmdir(os.path.join(d, name))  # fails (EBUSY) if not empty
                    except OSError:
                        pass

    def new_child(self, memory_limit: int | None, pids_limit: int | None) -> SandboxCgroup:
        """Create a child cgroup with the given limits (bytes / count; None or 0 = none)."""
        name = f"{_CHILD_PREFIX}{os.getpid()}-{next(_counter)}-{secrets.token_hex(3)}"
        dirs = {c: os.path.join(d, name) for c, d in self.dirs.items()}
        cg = SandboxCgroup(self, name, dirs, memory_limit or None, pids_limit or None)
        for attempt in range(2):
            self._acquire()
            if attempt == 0:
                self._sweep_stale()
            made: list[str] = []
            try:
                for d in dirs.values():
                    os.mkdir(d)
                    made.append(d)
                cg._apply_limits()
                return cg
            except OSError as exc:
                for d in reversed(made):
                    try:
                        os.rmdir(d)
                    except OSError:
                        pass
                self._release()
                # ENOENT: another grader removed the parent it had made; make it again
                if exc.errno != errno.ENOENT or attempt:
                    raise CgroupUnavailable(f"cannot set up the sandbox cgroup {name}: {exc}") from None
        raise AssertionError("unreachable")

    def _release(self) -> None:
        with _parents_lock:
            state = _parents.get(self._key)
            if state is None:
                return
            state[1] -= 1
            if state[1] > 0 or not state[0]:
                return
            # we made the parent: remove what we made again (EBUSY if another grader uses it).
            # Only that: on v1 a parent may be ours in one controller and another's (e.g. one
            # prepare_delegated_parent made) in the other.
            for d in state[0]:
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            del _parents[self._key]


def open_parent(root: str = "", parent: str = "interp-course") -> CgroupParent:
    """Find a usable cgroup hierarchy and the parent for sandbox cgroups.

    ``root``: "" detects the mounts from ``/proc/self/mountinfo``; otherwise a cgroup2
    mount point or a directory holding v1 ``memory/`` and ``pids/`` hierarchies.
    ``parent``: see the module docstring.  Nothing is created yet: the parent (and,
    on v2, its controllers) is made on the first :meth:`CgroupParent.new_child`, and
    removed again after the last child if this process made it.  Both raise
    :class:`CgroupUnavailable` with the reason when cgroups cannot be used.
    """
    h = _detect(root)
    return CgroupParent(h, _parent_dirs(h, parent))


# ----------------------------------------------------------------------------- child
@dataclass
class SandboxCgroup:
    """One sandbox's cgroup.  Create with :meth:`CgroupParent.new_child`."""

    parent: CgroupParent
    name: str
    dirs: dict[str, str]  # controller (v2: "unified") -> directory
    memory_limit: int | None
    pids_limit: int | None
    removed: bool = False
    final_stats: CgroupStats | None = None
    _procs_files: tuple[bytes, ...] = field(default=(), repr=False)

    @property
    def version(self) -> str:
        return self.parent.version

    def _dir(self, controller: str) -> str:
        return self.dirs["unified"] if self.version == V2 else self.dirs[controller]

    def _apply_limits(self) -> None:
        mem, pids = self._dir("memory"), self._dir("pids")
        if self.version == V1:
            if self.memory_limit:
                _write(os.path.join(mem, "memory.limit_in_bytes"), str(self.memory_limit))
                memsw = os.path.join(mem, "memory.memsw.limit_in_bytes")
                if os.path.exists(memsw):  # only with swap accounting; must be >= the above
                    _write(memsw, str(self.memory_limit))
        else:
            if self.memory_limit:
                _write(os.path.join(mem, "memory.max"), str(self.memory_limit))
                # swap.max is separate in v2: 0 keeps memory + swap within the limit
                if os.path.exists(os.path.join(self.parent.dirs["unified"], "memory.swap.max")):
                    _write(os.path.join(mem, "memory.swap.max"), "0")
        if self.pids_limit:
            _write(os.path.join(pids, "pids.max"), str(self.pids_limit))
        self._procs_files = tuple(
            os.fsencode(os.path.join(d, "cgroup.procs")) for d in self.dirs.values()
        )

    # -- joining --------------------------------------------------------------------------
    def join(self) -> None:
        """Move the calling process into this cgroup (all hierarchies).

        Safe as ``subprocess.Popen(preexec_fn=...)``: it only does os.open/os.write
        with values prepared in advance.  Raises OSError on failure, which makes
        Popen fail, i.e. no process starts outside the limits.
        """
        self.add(os.getpid())

    def add(self, pid: int) -> None:
        """Move another process (by pid) into this cgroup, in every hierarchy.

        Used for zygote kernels (:mod:`interp_course.sandbox.zygote`): the forked kernel waits until
        the grader has moved it here before it unshares or runs anything else.
        """
        data = str(int(pid)).encode()
        for path in self._procs_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    def contains(self, pid: int) -> bool:
        return all(pid in {int(x) for x in (_read(os.path.join(d, "cgroup.procs")) or "").split()
                           if x.isdigit()} for d in self.dirs.values())

    # -- inspection -----------------------------------------------------------------------
    def pids(self) -> set[int]:
        """Processes in this cgroup (union over the hierarchies)."""
        out: set[int] = set()
        for d in self.dirs.values():
            for line in (_read(os.path.join(d, "cgroup.procs")) or "").split():
                if line.isdigit():
                    out.add(int(line))
        return out

    def stats(self) -> CgroupStats:
        """Current usage and counters (the last ones read if the cgroup is gone)."""
        if self.removed and self.final_stats is not None:
            return self.final_stats
        mem, pids = self._dir("memory"), self._dir("pids")
        pid_events = _read_keyed(os.path.join(pids, "pids.events"))
        if self.version == V1:
            oom = _read_keyed(os.path.join(mem, "memory.oom_control"))
            peak = _read_int(os.path.join(mem, "memory.memsw.max_usage_in_bytes"))
            if peak is None:
                peak = _read_int(os.path.join(mem, "memory.max_usage_in_bytes"))
            return CgroupStats(
                version=V1,
                memory_limit=self.memory_limit,
                memory_current=_read_int(os.path.join(mem, "memory.usage_in_bytes")),
                memory_peak=peak,
                oom_kills=oom.get("oom_kill", 0),
                pids_limit=self.pids_limit,
                pids_current=_read_int(os.path.join(pids, "pids.current")),
                pids_peak=_read_int(os.path.join(pids, "pids.peak")),
                pids_limit_hits=pid_events.get("max", 0),
            )
        events = _read_keyed(os.path.join(mem, "memory.events"))
        return CgroupStats(
            version=V2,
            memory_limit=self.memory_limit,
            memory_current=_read_int(os.path.join(mem, "memory.current")),
            memory_peak=_read_int(os.path.join(mem, "memory.peak")),
            oom_kills=events.get("oom_kill", 0),
            pids_limit=self.pids_limit,
            pids_current=_read_int(os.path.join(pids, "pids.current")),
            pids_peak=_read_int(os.path.join(pids, "pids.peak")),
            pids_limit_hits=pid_events.get("max", 0),
        )

    # -- teardown -------------------------------------------------------------------------
    def kill_all(self, timeout: float = 5.0) -> bool:
        """SIGKILL every process in the cgroup; True once it is empty."""
        deadline = time.monotonic() + timeout
        # cgroup.kill exists in every non-root cgroup since Linux 5.14: look at the parent
        if self.version == V2 and os.path.exists(
            os.path.join(self.parent.dirs["unified"], "cgroup.kill")
        ):
            try:
                # atomic: also catches processes forking right now
                _write(os.path.join(self.dirs["unified"], "cgroup.kill"), "1")
            except OSError as exc:
                log.debug("cgroup.kill failed: %s", exc)
        while True:
            pids = self.pids()
            if not pids:
                return True
            if time.monotonic() > deadline:
                return False
            _kill_members(pids, self.pids)
            time.sleep(0.02)

    def destroy(self, timeout: float = 5.0) -> CgroupStats:
        """Kill what is left, remove the cgroup and return its final stats.  Idempotent."""
        if self.removed:
            assert self.final_stats is not None
            return self.final_stats
        stats = self.stats()
        emptied = self.kill_all(timeout)
        deadline = time.monotonic() + timeout
        left = list(self.dirs.values())
        while left:
            for d in list(left):
                try:
                    os.rmdir(d)
                    left.remove(d)
                except FileNotFoundError:
                    left.remove(d)
                except OSError as exc:
                    # EBUSY while dying tasks are still being removed; anything else
                    # (e.g. ENOTEMPTY: not a cgroup file system) will not go away
                    if exc.errno != errno.EBUSY:
                        deadline = 0.0
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        self.final_stats = stats
        if left:
            log.warning(
                "Could not remove the sandbox cgroup(s) %s (%s)",
                left,
                "processes survived" if not emptied else "still busy",
            )
        else:
            self.removed = True
            self.parent._release()
        return stats


def _kill_members(pids: set[int], current) -> None:
    """SIGKILL ``pids`` that are still members, without hitting a recycled pid.

    A pidfd pins the process; re-reading the member list after opening the pidfds
    proves each pinned process is (still) ours before it is signalled.
    """
    if not hasattr(os, "pidfd_open") or not hasattr(signal, "pidfd_send_signal"):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        return
    fds: dict[int, int] = {}
    try:
        for pid in pids:
            try:
                fds[pid] = os.pidfd_open(pid)
            except OSError:
                pass  # already gone
        still = current()
        for pid, fd in fds.items():
            if pid in still:
                try:
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                except OSError:
                    pass
    finally:
        for fd in fds.values():
            os.close(fd)


# ----------------------------------------------------------------------------- set-up (root)
# Where `make setup` puts the grading account's parent cgroup (nbgrader_config.py's cgroup_parent).
DELEGATED_PARENT = "/interp-course"


def cap_parent_memory(dirs: list[str], share: float = 0.75) -> int:
    """As root: cap the memory of all sandboxes together (the parent cgroup) at ``share`` of
    this machine's RAM, so that parallel workers' kernels cannot starve the grader or the
    machine; the cap in bytes. Each sandbox keeps its own, smaller, limit."""
    total = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * share)
    for d in dirs:
        for name in ("memory.limit_in_bytes", "memory.max"):  # v1, v2
            path = os.path.join(d, name)
            if os.path.exists(path):
                _write(path, str(total))
    return total


def prepare_delegated_parent(
    user: str | int, root: str = "", parent: str = "/interp-course"
) -> list[str]:
    """As root: create the parent cgroup and hand it to ``user`` (name or uid).

    Afterwards a grader running as ``user`` (configured with the same ``parent``)
    creates its per-sandbox children there itself.  On v2 this also enables
    ``memory`` and ``pids`` in ``cgroup.subtree_control`` of every cgroup from the
    mount root down to the parent (the grader never changes cgroups above its
    parent).  Returns the parent directories.  Idempotent.  See the module
    docstring for the extra v2 requirement.
    """
    if isinstance(user, int) or str(user).isdigit():
        uid = int(user)
        try:
            gid = pwd.getpwuid(uid).pw_gid
        except KeyError:
            gid = uid
    else:
        entry = pwd.getpwnam(str(user))
        uid, gid = entry.pw_uid, entry.pw_gid
    h = _detect(root)
    dirs = _parent_dirs(h, parent)
    if h.version == V2:
        files = ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control")
    else:
        files = ("cgroup.procs", "tasks")
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    if h.version == V2:
        # controllers for the parent itself (its ancestors) and for its children
        _v2_enable_down_to(h.mounts["unified"], dirs["unified"])
    for d in dirs.values():
        os.chown(d, uid, gid)
        for name in files:
            path = os.path.join(d, name)
            if os.path.exists(path):
                os.chown(path, uid, gid)
    return list(dirs.values())
