"""Tests of the per-sandbox cgroup (interp_course/sandbox/cgroups.py and its use in the sandbox).

cgroup v1 is tested for real, without mocks: real cgroups (``memory`` and ``pids``
mounted under /sys/fs/cgroup, as on the development machine), real kernels started
the one way grading starts them: by the grading account, forked from its zygote (the
``grader`` fixture of conftest.py runs the kernel code in a process of that account).
Each such test would fail if the limit were not enforced: the fork loop
would not raise, the children of the memory hog would not be killed, the bomb
would grow past the limit.

cgroup v2 cannot be enforced on the development machine (its cgroup2 mount has no
controllers), so here the v2 code path is tested against a plain directory laid
out like a cgroup2 mount (``test_v2_*``): these tests check which files are
written and read, with what values, and the v2 delegation rule, but not the
kernel's behaviour.  ``test_limits_on_plain_processes`` uses whichever version
the machine offers, so on a cgroup2 host (as root) it tests v2 for real; the
kernel tests here are marked v1-only because that is where they were verified.

The kernels' cgroups are made in a parent cgroup delegated to the grading account for
these tests (as `make setup` delegates /interp-course), so they do not meet other
graders' cgroups; after each test none of them may be left (the ``grader`` fixture).
Tests of cgroups alone, without a kernel, run as root, each under a parent name of its
own, and check that the parent is removed again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from interp_course.sandbox import cgroups
from interp_course.sandbox.cgroups import CgroupStats, CgroupUnavailable, SandboxCgroup, open_parent, prepare_delegated_parent
from interp_course.sandbox.kernel_manager import SandboxedKernelManager, SandboxUnavailableError
from tests.test_sandbox_execute import box, errors, needs_bwrap, run_nb, text  # noqa: F401

MiB = 2**20
CGROUPS_PY = Path(cgroups.__file__).resolve()


def _v1_usable() -> bool:
    if os.geteuid() != 0:
        return False
    try:
        return open_parent().version == cgroups.V1
    except CgroupUnavailable:
        return False


needs_v1 = pytest.mark.skipif(
    not _v1_usable(), reason="needs root and cgroup v1 'memory' + 'pids' (as on the dev machine)"
)


# ---------------------------------------------------------------------------- helpers
@pytest.fixture
def parent_name():
    """A parent cgroup name of its own for this test; checks that it is gone at the end."""
    name = f"interp-course-test-{secrets.token_hex(3)}"
    yield name
    try:
        dirs = list(open_parent(parent=name).dirs.values())
    except CgroupUnavailable:
        return
    left = [d for d in dirs if os.path.exists(d)]
    for d in left:
        for child in os.listdir(d):
            if child.startswith("sbx-"):
                try:
                    os.rmdir(os.path.join(d, child))
                except OSError:
                    pass
        try:
            os.rmdir(d)
        except OSError:
            pass
    assert not left, f"parent cgroup left behind: {left}"


def _procs(path: str) -> set[int]:
    with open(os.path.join(path, "cgroup.procs")) as f:
        return {int(x) for x in f.read().split()}


def _descendants(root_pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [root_pid]
    while todo:
        pid = todo.pop()
        out.add(pid)
        todo.extend(children.get(pid, []))
    return out


def _in_cgroup(pid: int, name: str) -> bool:
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return name in f.read()
    except OSError:
        return False


class ForkProbe:
    """Outside the sandbox: start /bin/true every 0.1 s, recording failures and latency."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                subprocess.run(["/bin/true"], check=True, timeout=10)
                self.times.append(time.monotonic() - t0)
            except (OSError, subprocess.SubprocessError) as exc:
                self.failures.append(repr(exc))
            self._stop.wait(0.1)

    def __enter__(self) -> ForkProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def check(self) -> None:
        print(f"outside: {len(self.times)} forks, slowest {max(self.times):.3f} s")
        assert not self.failures, self.failures
        assert len(self.times) >= 5
        assert max(self.times) < 2.0


class GraderKernel:
    """(In the grading account's process) a SandboxedKernelManager driven directly, one cell at a time."""

    def __init__(self, workdir: str, traits: dict, log_warnings: bool) -> None:
        self.warnings: list[str] = []
        if log_warnings:
            logger = logging.getLogger(f"test-cgroup-fallback-{len(_grader_kernels)}")
            handler = logging.Handler(logging.WARNING)
            handler.emit = lambda record: self.warnings.append(record.getMessage())
            logger.addHandler(handler)
            traits = {**traits, "log": logger}
        self.km = SandboxedKernelManager(kernel_name="python3", **traits)
        self.workdir = workdir
        self.loop = asyncio.new_event_loop()
        self.kc = None

    def start(self) -> None:
        async def go():
            await self.km.start_kernel(cwd=self.workdir)
            self.kc = self.km.client()
            self.kc.start_channels()
            await self.kc.wait_for_ready(timeout=60)

        self.loop.run_until_complete(go())

    def run(self, code: str, timeout: float = 30) -> tuple[str, dict]:
        out: list[str] = []

        def hook(msg):
            # stdout only: a fork bomb's "fork: retry" messages land on the kernel's stderr
            if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
                out.append(msg["content"]["text"])

        reply = self.loop.run_until_complete(
            self.kc.execute_interactive(code, timeout=timeout, output_hook=hook)
        )
        return "".join(out), reply["content"]

    def restart(self) -> None:
        async def go():
            await self.km.restart_kernel(now=True)
            await self.kc.wait_for_ready(timeout=60)

        self.loop.run_until_complete(go())

    def stop(self) -> None:
        async def go():
            if self.kc is not None:
                self.kc.stop_channels()
            await self.km.shutdown_kernel(now=True)

        try:
            self.loop.run_until_complete(go())
        finally:
            self.loop.close()

    def close_loop(self) -> None:
        self.loop.close()

    def info(self) -> dict:
        km, cg = self.km, self.km.cgroup
        stats, last = km.cgroup_stats(), km.last_cgroup_stats
        return {"cgroup": None if cg is None else {"name": cg.name, "dirs": cg.dirs, "version": cg.version,
                                                   "memory_limit": cg.memory_limit, "pids_limit": cg.pids_limit},
                "pid": km.provisioner.pid if km.provisioner is not None else None,
                "last_command": km.last_command, "has_kernel": km.has_kernel,
                "cgroup_stats": None if stats is None else stats.__dict__,
                "last_cgroup_stats": None if last is None else last.__dict__, "warnings": self.warnings}


_grader_kernels: list[GraderKernel] = []  # (in the grading account's process) by number


def grader_kernel_new(workdir: str, traits: dict, log_warnings: bool) -> int:
    _grader_kernels.append(GraderKernel(workdir, traits, log_warnings))
    return len(_grader_kernels) - 1


def grader_kernel_do(number: int, what: str, *args):
    return getattr(_grader_kernels[number], what)(*args)


class Manager:
    """What the tests read of a kernel manager in the grading account's process; its cgroup as
    root sees it (its files read from here)."""

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel

    def _info(self) -> dict:
        return self._kernel.do("info")

    @property
    def cgroup(self) -> SandboxCgroup | None:
        cg = self._info()["cgroup"]
        if cg is None:
            return None
        parent = SimpleNamespace(version=cg["version"], dirs={})
        return SandboxCgroup(parent, cg["name"], cg["dirs"], cg["memory_limit"], cg["pids_limit"])

    @property
    def provisioner(self) -> SimpleNamespace:
        return SimpleNamespace(pid=self._info()["pid"])

    @property
    def last_command(self) -> list[str] | None:
        return self._info()["last_command"]

    @property
    def has_kernel(self) -> bool:
        return self._info()["has_kernel"]

    @property
    def last_cgroup_stats(self) -> CgroupStats | None:
        stats = self._info()["last_cgroup_stats"]
        return None if stats is None else CgroupStats(**stats)

    def cgroup_stats(self) -> CgroupStats | None:
        stats = self._info()["cgroup_stats"]
        return None if stats is None else CgroupStats(**stats)


class Kernel:
    """A SandboxedKernelManager driven directly, one cell at a time, by the grading account's
    process (box["grader"]); ``km`` reads it. Its cgroup parent is the box's unless given."""

    def __init__(self, box, log_warnings: bool = False, **traits) -> None:
        if box["cgroup_parent"]:
            traits.setdefault("cgroup_parent", box["cgroup_parent"])
        self.grader = box["grader"]
        self.number = self.grader.call(grader_kernel_new, str(box["workdir"]), traits, log_warnings)
        self.km = Manager(self)

    def do(self, what: str, *args):
        return self.grader.call(grader_kernel_do, self.number, what, *args)

    def start(self) -> None:
        self.do("start")

    def run(self, code: str, timeout: float = 30) -> tuple[str, dict]:
        out, content = self.do("run", code, timeout)
        return out, content

    def restart(self) -> None:
        self.do("restart")

    def stop(self) -> None:
        self.do("stop")

    def close_loop(self) -> None:
        self.do("close_loop")

    def warnings(self) -> list[str]:
        return self.do("info")["warnings"]


# ---------------------------------------------------------------------------- v1, real kernels
@needs_bwrap
@needs_v1
def test_every_process_of_the_sandbox_is_in_its_cgroup(box):
    """The kernel's first process joins before it unshares or runs anything: it and all it
    starts are inside; a restart gets a new cgroup and the old one is removed."""
    k = Kernel(box, cgroup_memory_limit_mb=1024, cgroup_pids_limit=64)
    k.start()
    try:
        cg = k.km.cgroup
        assert cg is not None and cg.version == "v1"
        with open(os.path.join(cg.dirs["pids"], "pids.max")) as f:
            assert f.read().strip() == "64"
        with open(os.path.join(cg.dirs["memory"], "memory.limit_in_bytes")) as f:
            assert int(f.read()) == 1024 * MiB
        k.run("import subprocess\np = subprocess.Popen(['sleep', '60'])")
        first_pid = k.km.provisioner.pid
        tree = _descendants(first_pid)
        assert len(tree) >= 4  # the kernel's first process, its pid namespace's init, the kernel, sleep
        for path in cg.dirs.values():
            assert _procs(path) == tree, path
        assert k.km.last_command[0].endswith("prlimit")  # its zygote runs under prlimit + bwrap

        old = cg
        k.restart()
        new = k.km.cgroup
        assert new is not None and new.name != old.name
        assert not any(os.path.exists(d) for d in old.dirs.values())
        assert all(_in_cgroup(p, new.name) for p in _descendants(k.km.provisioner.pid))
    finally:
        k.stop()
    assert k.km.cgroup is None
    assert not any(os.path.exists(d) for d in new.dirs.values())


@needs_bwrap
@needs_v1
def test_fork_loop_gets_an_error_at_the_pids_limit_and_the_next_cell_runs(box):
    limit = 64
    fork_loop = textwrap.dedent(
        """
        import os, time
        kids, t0 = 0, time.monotonic()
        try:
            while kids < 500:  # without a pids limit this ends here, with no error
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                kids += 1
        finally:
            print(kids, round(time.monotonic() - t0, 3))
        """
    )
    reap = textwrap.dedent(
        """
        import os, signal
        for p in [p for p in os.listdir('/proc') if p.isdigit()]:
            try:
                with open(f'/proc/{p}/stat') as f:
                    ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            except OSError:
                continue
            if ppid == os.getpid():  # the sleeping children of the fork loop
                os.kill(int(p), signal.SIGKILL)
        n = 0
        while True:
            try:
                os.waitpid(-1, 0)
                n += 1
            except ChildProcessError:
                break
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        print('fork works again; reaped', n)
        """
    )
    with ForkProbe() as probe:
        nb, ep = run_nb(
            box,
            ["x = 41", fork_loop, "print(x + 1)", reap],
            cgroup_pids_limit=limit,
        )
    probe.check()
    kids, seconds = text(nb.cells[1]).split()
    print(f"fork loop stopped after {kids} forks in {seconds} s")
    assert errors(nb.cells[1]) == ["BlockingIOError"], nb.cells[1].outputs
    assert 10 < int(kids) < limit
    assert text(nb.cells[2]) == "42\n"
    assert text(nb.cells[3]).startswith("fork works again"), nb.cells[3].outputs
    assert ep.fault_log == []
    stats = ep.cgroup_stats[0]  # of the executor's (first) kernel manager, after the run
    print(stats)
    assert stats.pids_limit_hits >= 1 and stats.pids_peak <= limit
    assert "more than 64 processes" in stats.describe()


@needs_bwrap
@needs_v1
def test_bash_fork_bomb_is_held_at_the_limit_and_killed_with_the_kernel(box):
    limit = 48
    k = Kernel(box, cgroup_pids_limit=limit)
    k.start()
    seen: set[int] = set()
    try:
        cg = k.km.cgroup
        # never start the bomb unless the limit is in place
        with open(os.path.join(cg.dirs["pids"], "pids.max")) as f:
            assert f.read().strip() == str(limit)
        k.run("x = 41")
        with ForkProbe() as probe:
            t0 = time.monotonic()
            k.run("import subprocess\nsubprocess.Popen(['bash', '-c', ':(){ :|:& };:'])")
            peak, reached = 0, None
            while time.monotonic() - t0 < 3:
                with open(os.path.join(cg.dirs["pids"], "pids.current")) as f:
                    current = int(f.read())
                seen |= cg.pids()
                if current > peak:
                    peak, reached = current, time.monotonic() - t0
                time.sleep(0.02)
            out, reply = k.run("print(x + 1)")
        probe.check()
        stats = cg.stats()
        print(f"bash bomb: {peak} pids after {reached:.2f} s; {stats}")
        assert peak <= limit and stats.pids_peak <= limit
        assert peak >= limit - 2  # it did fill the limit
        assert stats.pids_limit_hits > 0
        assert out == "42\n" and reply["status"] == "ok"
    finally:
        t1 = time.monotonic()
        k.stop()
        print(f"shutdown and cgroup removal took {time.monotonic() - t1:.2f} s")
    assert not any(os.path.exists(d) for d in cg.dirs.values())
    assert not [p for p in seen if _in_cgroup(p, cg.name)]
    assert k.km.last_cgroup_stats.pids_limit_hits > 0


@needs_bwrap
@needs_v1
def test_a_bomb_in_one_sandbox_does_not_starve_another(box):
    """Two kernels side by side (as when grading in parallel): one holds a bash fork bomb
    at its limit, the other still starts processes and allocates memory as usual."""
    limit = 40
    bomb = Kernel(box, cgroup_pids_limit=limit)
    other = Kernel(box, cgroup_pids_limit=limit, cgroup_memory_limit_mb=1024)
    bomb.start()
    try:
        other.start()
        try:
            assert bomb.km.cgroup.name != other.km.cgroup.name
            with open(os.path.join(bomb.km.cgroup.dirs["pids"], "pids.max")) as f:
                assert f.read().strip() == str(limit)  # never start the bomb without it
            bomb.run("import subprocess\nsubprocess.Popen(['bash', '-c', ':(){ :|:& };:'])")
            deadline = time.monotonic() + 5
            while bomb.km.cgroup.stats().pids_current < limit - 2:
                assert time.monotonic() < deadline, bomb.km.cgroup.stats()
                time.sleep(0.05)
            out, reply = other.run(
                "import subprocess\n"
                "procs = [subprocess.Popen(['sleep', '0.5']) for _ in range(20)]\n"
                "print(sum(p.wait() == 0 for p in procs), len(b'x' * (300 * 2**20)) >> 20)"
            )
            assert reply["status"] == "ok" and out == "20 300\n", (out, reply)
            assert bomb.km.cgroup.stats().pids_limit_hits > 0
            assert other.km.cgroup.stats().pids_limit_hits == 0
        finally:
            other.stop()
    finally:
        bomb.stop()


@needs_bwrap
@needs_v1
def test_forked_memory_hog_is_stopped_at_the_cgroup_limit(box):
    """Four children of 200 MiB each: every one is far below RLIMIT_AS (6 GiB), but
    together they exceed the 512 MiB cgroup limit, so the OOM killer must step in."""
    hog = textwrap.dedent(
        """
        import os, time, json
        kids = []
        for i in range(4):
            pid = os.fork()
            if pid == 0:
                try:
                    block = b"x" * (200 * 2**20)  # really touched, unlike bytearray(n)
                    time.sleep(3)
                finally:
                    os._exit(0)
            kids.append(pid)
        ends = []
        for pid in kids:
            status = os.waitpid(pid, 0)[1]
            ends.append(os.WTERMSIG(status) if os.WIFSIGNALED(status) else -os.WEXITSTATUS(status))
        print(json.dumps(ends))
        """
    )
    nb, ep = run_nb(
        box,
        ["x = 41", hog, "print(x + 1)"],
        cgroup_memory_limit_mb=512,
    )
    stats = ep.cgroup_stats[0]
    print(f"{stats}\n{stats.describe()}")
    if errors(nb.cells[1]) == ["KernelDied"]:  # the OOM killer may pick the kernel itself
        pass
    else:
        assert errors(nb.cells[1]) == [], nb.cells[1].outputs
        ends = json.loads(text(nb.cells[1]))
        print("children ended with", ends)
        assert signal.SIGKILL in ends
    assert text(nb.cells[2]) == "42\n"
    assert stats.oom_kills >= 1
    assert 400 * MiB < stats.memory_peak <= 512 * MiB
    assert "more than 512 MiB of memory" in stats.describe()
    assert not any(ep.cgroups_left)  # removed (the grader fixture checks the parent)


@needs_bwrap
@needs_v1
def test_nothing_survives_a_killed_kernel(box):
    """Processes that left the kernel's session die with the sandbox, and its cgroup goes.

    (The kernel's pid namespace already takes them down; the cgroup's own kill is
    tested on its own below.)"""
    k = Kernel(box)
    k.start()
    cg = k.km.cgroup
    try:
        k.run(
            "import subprocess\n"
            "for _ in range(5):\n"
            "    subprocess.Popen(['sleep', '600'], start_new_session=True)"
        )
        assert len(cg.pids()) >= 8
        members = cg.pids()
    finally:
        k.stop()
    assert not any(os.path.exists(d) for d in cg.dirs.values())
    assert not [p for p in members if _in_cgroup(p, cg.name)]
    assert k.km.last_cgroup_stats.pids_peak >= 8


@needs_v1
def test_destroy_kills_everything_in_the_cgroup(parent_name):
    """Without bwrap: daemons that left the process tree and a loop that keeps starting
    new processes are all killed, then the cgroup is removed."""
    cg = open_parent(parent=parent_name).new_child(256 * MiB, 64)
    script = "for i in 1 2 3; do setsid sleep 600 & done; while :; do sleep 0.01 & wait; done"
    proc = subprocess.Popen(["/bin/sh", "-c", script], preexec_fn=cg.join,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while len(cg.pids()) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        members = cg.pids()
        assert proc.pid in members and len(members) >= 4  # sh and the three daemons
        t0 = time.monotonic()
        stats = cg.destroy()
        print(f"killed {len(members)}+ processes and removed the cgroup in "
              f"{time.monotonic() - t0:.3f} s")
    finally:
        cg.destroy()
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert cg.removed and not any(os.path.exists(d) for d in cg.dirs.values())
    assert not [p for p in members if _in_cgroup(p, cg.name)]
    assert stats.pids_current >= 4 and cg.destroy() is stats  # idempotent


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create cgroups")
def test_limits_on_plain_processes():
    """Either cgroup version, without bwrap: the relative default parent where it can
    be used (v1 here), else an absolute one (typical for v2 as root)."""
    name = f"interp-course-test-{secrets.token_hex(3)}"
    cgs = []
    for parent in (name, "/" + name):
        try:
            cgs = [open_parent(parent=parent).new_child(None, 16)]
            break
        except CgroupUnavailable as exc:
            reason = str(exc)
    if not cgs:
        pytest.skip(f"no usable cgroup: {reason}")
    try:
        pids_cg = cgs[0]
        loop = ("import os, time\nn = 0\ntry:\n    while n < 300:\n        if os.fork() == 0:\n"
                "            os.closerange(0, 3); time.sleep(60); os._exit(0)\n        n += 1\n"
                "except OSError:\n    pass\nprint(n)")
        out = subprocess.run([sys.executable, "-c", loop], preexec_fn=pids_cg.join,
                             capture_output=True, text=True, timeout=60)
        members = pids_cg.pids()
        assert 5 < int(out.stdout) < 16 and len(members) == int(out.stdout)
        st = pids_cg.destroy()
        assert st.pids_limit_hits >= 1 and st.pids_peak in (None, 16)
        assert pids_cg.removed and not [p for p in members if _in_cgroup(p, pids_cg.name)]

        mem_cg = pids_cg.parent.new_child(128 * MiB, 64)
        cgs.append(mem_cg)
        hog = ("import os, time\nk = []\nfor i in range(3):\n    p = os.fork()\n    if p == 0:\n"
               "        b = b'x' * (60 * 2**20); time.sleep(2); os._exit(0)\n    k.append(p)\n"
               "print(sum(os.waitpid(p, 0)[1] == 9 for p in k))")
        out = subprocess.run([sys.executable, "-c", hog], preexec_fn=mem_cg.join,
                             capture_output=True, text=True, timeout=60)
        st = mem_cg.destroy()
        print(mem_cg.version, st)
        assert int(out.stdout) >= 1 and st.oom_kills >= 1
        assert st.memory_peak is None or st.memory_peak <= 128 * MiB
        assert mem_cg.removed
        assert not os.path.exists(mem_cg.parent.dirs[next(iter(mem_cg.parent.dirs))])
    finally:
        for cg in cgs:
            cg.destroy()


# ---------------------------------------------------------------------------- fallback
@needs_bwrap
def test_without_cgroups_the_kernel_runs_with_a_warning(box):
    empty = Path(box["run"]) / "no-cgroups-here"
    empty.mkdir()
    box["grader"].hand_over(empty)
    k = Kernel(box, log_warnings=True, cgroup_root=str(empty))
    k.start()
    try:
        assert k.km.cgroup is None and k.km.cgroup_stats() is None
        out, _ = k.run("print(6 * 7)")
        assert out == "42\n"
    finally:
        k.stop()
    warnings = k.warnings()  # those of the kernel manager's log, at WARNING and above
    assert len(warnings) == 1, warnings
    assert "NOT enforced" in warnings[0] and str(empty) in warnings[0]
    assert "require_cgroup" in warnings[0]


@needs_bwrap
def test_without_cgroups_require_cgroup_refuses(box):
    k = Kernel(box, cgroup_root=box["run"], require_cgroup=True)
    with pytest.raises(SandboxUnavailableError, match="require_cgroup"):
        k.start()
    assert k.km.cgroup is None and not k.km.has_kernel
    k.close_loop()


# ---------------------------------------------------------------------------- delegation (v1)
_AS_USER = r"""
import importlib.util, json, os, subprocess, sys
spec = importlib.util.spec_from_file_location("cgroups", sys.argv[1])
cg_mod = sys.modules["cgroups"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cg_mod)
res = {"uid": os.getuid()}
try:
    cg = cg_mod.open_parent(parent=sys.argv[2]).new_child(64 * 2**20, 12)
except cg_mod.CgroupUnavailable as exc:
    res["unavailable"] = str(exc)
else:
    loop = ("import os, time\nn = 0\ntry:\n    while n < 200:\n        if os.fork() == 0:\n"
            "            os.closerange(0, 3); time.sleep(30); os._exit(0)\n        n += 1\n"
            "except OSError:\n    pass\n"
            "print(n)")
    out = subprocess.run([sys.executable, "-c", loop], preexec_fn=cg.join,
                         capture_output=True, text=True)
    res["forks"] = int(out.stdout)
    res["stats"] = cg.destroy().__dict__
    res["removed"] = cg.removed
    res["dirs_left"] = [d for d in cg.dirs.values() if os.path.exists(d)]
print(json.dumps(res))
"""


def _as_user(uid: int, parent: str) -> dict:
    out = subprocess.run(
        ["/usr/bin/python3", "-c", _AS_USER, str(CGROUPS_PY), parent],
        user=uid, group=uid, extra_groups=[], capture_output=True, text=True, timeout=60, cwd="/",
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@needs_v1
@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs /usr/bin/python3")
def test_delegated_parent_lets_an_unprivileged_grader_make_limited_children(parent_name):
    uid = 4242  # any uid without a home; /usr/bin/python3 and cgroups.py are world-readable
    refused = _as_user(uid, parent_name)
    print(refused)
    assert refused["uid"] == uid and "prepare_delegated_parent" in refused["unavailable"]

    dirs = prepare_delegated_parent(uid, parent=parent_name)
    try:
        assert all(os.stat(d).st_uid == uid for d in dirs)
        assert all(os.stat(os.path.join(d, "cgroup.procs")).st_uid == uid for d in dirs)
        res = _as_user(uid, parent_name)
        print(res)
        assert res["uid"] == uid
        assert 5 < res["forks"] < 12  # the pids limit holds for the unprivileged grader too
        assert res["stats"]["pids_limit_hits"] >= 1
        assert res["removed"] and res["dirs_left"] == []
        assert all(os.path.isdir(d) for d in dirs)  # a prepared parent stays
    finally:
        for d in dirs:
            os.rmdir(d)


@needs_v1
def test_a_grader_removes_only_the_parent_cgroups_it_made(parent_name):
    """v1: a parent that exists in one controller (made at set-up, say) and not in the other. The
    grader makes the missing one and, when its last sandbox is gone, removes that one only: the
    other is not its own, and removing it would leave later sandboxes without their limits."""
    parent = open_parent(parent=parent_name)
    prepared, missing = parent.dirs["pids"], parent.dirs["memory"]
    os.mkdir(prepared)
    try:
        child = parent.new_child(64 * MiB, 16)
        assert os.path.isdir(missing)
        child.destroy()
        assert not os.path.exists(missing)
        assert os.path.isdir(prepared)
    finally:
        os.rmdir(prepared)


# ---------------------------------------------------------------------------- v2 (file protocol)
def _fake_cgroup2(tmp: Path, delegated: bool = True) -> Path:
    """A directory laid out like a cgroup2 mount, with /interp-course already delegated."""
    (tmp / "cgroup.controllers").write_text("cpu io memory pids\n")
    (tmp / "cgroup.subtree_control").write_text("memory pids\n" if delegated else "")
    (tmp / "cgroup.procs").write_text("")
    if delegated:
        parent = tmp / "interp-course"
        parent.mkdir()
        for name, value in {
            "cgroup.controllers": "memory pids\n",
            "cgroup.subtree_control": "memory pids\n",
            "cgroup.procs": "",
            "cgroup.kill": "",
            "memory.max": "max\n",
            "memory.swap.max": "max\n",
            "pids.max": "max\n",
        }.items():
            (parent / name).write_text(value)
    return tmp


def test_v2_file_protocol_on_a_directory_laid_out_like_cgroup2(tmp_path):
    """Not the kernel: a plain directory.  Checks what the v2 path writes and reads."""
    root = _fake_cgroup2(tmp_path)
    parent = open_parent(root=str(root), parent="/interp-course")
    assert parent.version == "v2" and parent.dirs == {"unified": str(root / "interp-course")}
    cg = parent.new_child(512 * MiB, 64)
    d = Path(cg.dirs["unified"])
    assert d.parent == root / "interp-course" and d.name.startswith(f"sbx-{os.getpid()}-")
    written = {p.name: p.read_text() for p in d.iterdir()}
    assert written == {"memory.max": str(512 * MiB), "memory.swap.max": "0", "pids.max": "64"}

    # joining from preexec_fn writes the child's own pid before it execs
    (d / "cgroup.procs").write_text("")
    proc = subprocess.Popen([sys.executable, "-c", "pass"], preexec_fn=cg.join)
    proc.wait()
    assert (d / "cgroup.procs").read_text() == str(proc.pid)

    # what the kernel would report
    (d / "cgroup.procs").write_text("")
    (d / "memory.current").write_text("1000\n")
    (d / "memory.peak").write_text(f"{500 * MiB}\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 17\noom 2\noom_kill 2\noom_group_kill 0\n")
    (d / "pids.current").write_text("3\n")
    (d / "pids.peak").write_text("64\n")
    (d / "pids.events").write_text("max 9\n")
    stats = cg.stats()
    assert (stats.version, stats.memory_peak, stats.oom_kills) == ("v2", 500 * MiB, 2)
    assert (stats.pids_current, stats.pids_peak, stats.pids_limit_hits) == (3, 64, 9)
    assert stats.describe() == (
        "Your notebook used more than 512 MiB of memory (all its processes together), so the "
        "system stopped 2 processes; it tried to run more than 64 processes/threads at once "
        "(9 refused)."
    )

    final = cg.destroy(timeout=1)
    assert (d / "cgroup.kill").read_text() == "1"  # one atomic kill of everything inside
    assert final == stats
    # a plain directory with files in it cannot be rmdir'd like a cgroup: the only step
    # this stand-in cannot show
    assert not cg.removed and d.exists()


def test_v2_without_swap_file_or_limits(tmp_path):
    root = _fake_cgroup2(tmp_path)
    (root / "interp-course" / "memory.swap.max").unlink()
    cg = open_parent(root=str(root), parent="/interp-course").new_child(256 * MiB, None)
    assert {p.name for p in Path(cg.dirs["unified"]).iterdir()} == {"memory.max"}


def test_v2_parent_without_controllers_is_refused_and_nothing_is_made(tmp_path):
    """The grader does not change cgroups above its parent: if the mount root does not
    enable pids for its children, the parent cannot have it, and nothing is created."""
    root = _fake_cgroup2(tmp_path, delegated=False)
    (root / "cgroup.subtree_control").write_text("memory\n")
    with pytest.raises(CgroupUnavailable, match="pids not available to"):
        open_parent(root=str(root), parent="/interp-course").new_child(2**26, 8)
    assert not (root / "interp-course").exists()
    assert (root / "cgroup.subtree_control").read_text() == "memory\n"


def test_v2_missing_controllers_are_reported(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("hugetlb\n")
    with pytest.raises(CgroupUnavailable, match="does not offer memory, pids"):
        open_parent(root=str(tmp_path))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_v2_prepare_delegated_parent_enables_controllers_and_chowns(tmp_path):
    root = _fake_cgroup2(tmp_path, delegated=False)
    dirs = prepare_delegated_parent(4242, root=str(root), parent="/interp-course")
    p = root / "interp-course"
    assert dirs == [str(p)]
    assert (root / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (p / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert p.stat().st_uid == 4242 and (p / "cgroup.subtree_control").stat().st_uid == 4242


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as another uid")
def test_v2_unprivileged_grader_outside_the_delegated_subtree_is_told_why(tmp_path):
    """cgroup v2 lets an unprivileged process move a process only if it may write
    cgroup.procs of the common ancestor of both cgroups."""
    top = Path(tempfile.mkdtemp(prefix="fakecg2-"))
    try:
        os.chmod(top, 0o755)
        root = _fake_cgroup2(top)
        for path in [root / "interp-course", *(root / "interp-course").iterdir()]:
            os.chown(path, 4242, 4242)
        script = (
            "import importlib.util, sys\n"
            "spec = importlib.util.spec_from_file_location('cgroups', sys.argv[1])\n"
            "m = sys.modules['cgroups'] = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(m)\n"
            "try:\n"
            "    m.open_parent(root=sys.argv[2], parent='/interp-course').new_child(2**26, 8)\n"
            "    print('created')\n"
            "except m.CgroupUnavailable as exc:\n"
            "    print(exc)\n"
        )

        def as_user() -> str:
            out = subprocess.run(
                ["/usr/bin/python3", "-c", script, str(CGROUPS_PY), str(root)],
                user=4242, group=4242, extra_groups=[], capture_output=True, text=True,
                timeout=60, cwd="/",
            )
            assert out.returncode == 0, out.stderr
            return out.stdout.strip()

        # this process's v2 cgroup is "/", the fake mount's root: the common ancestor
        message = as_user()
        assert "may not move processes" in message and "Delegate=yes" in message
        os.chown(root / "cgroup.procs", 4242, 4242)
        assert as_user() == "created"
    finally:
        shutil.rmtree(top)
