"""Real-kernel tests of the sandbox and the fault-tolerant executor.

No mocks: every test starts kernels the one way grading does, as the grading account (the
``grader`` fixture of conftest.py: a process of that account runs the kernel code), each forked
from that process's zygote into a sandbox of its own, via ``ResilientExecute`` (or
``SandboxedKernelManager`` directly), and checks what the notebook could do and what ended up in
its cells.  After every test no process of that test (kernel, anything the notebook spawned) may
still be alive, and no kernel's cgroup may be left.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from traitlets.config import Config

import interp_course
from interp_course.sandbox.cgroups import CgroupStats
from interp_course.course import CHECKOUT
from interp_course.preprocessors.resilient_execute import KernelStartFailed, ResilientExecute
from interp_course.sandbox.kernel_manager import SandboxedKernelManager, SandboxUnavailableError

REPO = CHECKOUT
PACKAGE_DIR = Path(interp_course.__file__).resolve().parent


def _bwrap_works() -> bool:
    bwrap = shutil.which("bwrap")
    if not bwrap or not shutil.which("prlimit"):
        return False
    probe = subprocess.run(
        [bwrap, "--unshare-all", "--unshare-user", "--ro-bind", "/usr", "/usr",
         "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
         "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev",
         "--", "/usr/bin/true"],
        capture_output=True,
    )
    return probe.returncode == 0


needs_bwrap = pytest.mark.skipif(
    not _bwrap_works(), reason="bubblewrap missing or not usable (apt-get install bubblewrap)"
)


# ---------------------------------------------------------------------------- helpers
def _live_processes_mentioning(marker: str) -> list[str]:
    """Non-zombie processes whose command line contains ``marker``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmd and state != "Z":
            found.append(f"{pid} {state} {cmd[:200]}")
    return found


@pytest.fixture
def box(grader):
    """A student working dir (with a secret sibling dir) in the grading account's runs folder,
    where grading makes each run's folders, and that account's process to start kernels from.

    The box's folder doubles as the marker for the leftover-process check.
    """
    top = grader.runs / f"box-{secrets.token_hex(4)}"
    workdir = top / "student"
    workdir.mkdir(parents=True)
    secret_dir = top / "other_student"
    secret_dir.mkdir()
    (secret_dir / "answers.txt").write_text("the answers of somebody else\n")
    grader.hand_over(top)
    yield {"workdir": workdir, "secret": secret_dir / "answers.txt", "run": str(top), "grader": grader,
           "cgroup_parent": grader.cgroup_parent}
    deadline = time.monotonic() + 5
    while True:
        left = _live_processes_mentioning(str(top))
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, "processes survived the test:\n" + "\n".join(left)


def execute_as_grader(cells: list[str], workdir: str, timeout: float, executor: dict, km_traits: dict,
                      grader_env: dict) -> dict:
    """(In the grading account's process) ``cells`` run by ResilientExecute in ``workdir``, with
    ``grader_env`` in this process's environment; what the tests read of the run."""
    os.environ.update(grader_env)
    c = Config()
    c.ResilientExecute.timeout = timeout
    c.ResilientExecute.interrupt_grace = 1.5
    for key, value in executor.items():
        setattr(c.ResilientExecute, key, value)
    for key, value in km_traits.items():
        setattr(c.SandboxedKernelManager, key, value)
    nb = new_notebook(cells=[new_code_cell(src) for src in cells])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    ep = ResilientExecute(config=c)
    kms: list[SandboxedKernelManager] = []  # every kernel manager it makes, to read its cgroup after the run
    create = ep.create_kernel_manager

    def recording():
        kms.append(create())
        return kms[-1]

    ep.create_kernel_manager = recording
    start = time.monotonic()
    ep.preprocess(nb, {"metadata": {"path": workdir}})
    stats = [km.cgroup_stats() for km in kms]
    return {"nb": nb, "fault_log": ep.fault_log, "elapsed": time.monotonic() - start,
            "cgroup_stats": [s.__dict__ if s is not None else None for s in stats],
            "cgroups_left": [km.cgroup is not None for km in kms]}


def run_nb(box, cells, *, timeout=20, executor=None, grader_env=None, **km_traits):
    """Run ``cells`` as grading does: by ResilientExecute in the grading account's process, each
    kernel forked from its zygote, in a cgroup of the parent delegated to it. Returns the notebook
    and what the executor recorded (``fault_log``, ``elapsed``) with the ``cgroup_stats`` of each
    kernel manager it made and whether its cgroup was left (``cgroups_left``)."""
    if box["cgroup_parent"]:
        km_traits.setdefault("cgroup_parent", box["cgroup_parent"])
    res = box["grader"].call(execute_as_grader, cells, str(box["workdir"]), timeout, executor or {}, km_traits,
                             grader_env or {})
    ep = SimpleNamespace(fault_log=res["fault_log"], elapsed=res["elapsed"], cgroups_left=res["cgroups_left"],
                         cgroup_stats=[CgroupStats(**s) if s else None for s in res["cgroup_stats"]])
    print(f"notebook took {ep.elapsed:.2f} s")
    return nbformat.from_dict(res["nb"]), ep


def text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def errors(cell) -> list[str]:
    return [o.ename for o in cell.outputs if o.output_type == "error"]


# ---------------------------------------------------------------------------- tests
def test_missing_bwrap_gives_install_hint(box):
    with pytest.raises(KernelStartFailed, match="apt-get install bubblewrap") as refused:
        run_nb(box, ["1"], bwrap_path="/nonexistent/bwrap")
    assert isinstance(refused.value.__cause__, SandboxUnavailableError)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can try to start a kernel as root")
def test_no_kernel_starts_as_root():
    """The one launch path is the grading account's: as root a manager refuses before it makes
    anything (the sandbox uid maps to the grader's, which must never be root)."""
    km = SandboxedKernelManager(kernel_name="python3")
    with pytest.raises(SandboxUnavailableError, match=r"run as interp-grader \(make grade does\)"):
        asyncio.run(km.start_kernel(cwd="/"))
    assert not km.has_kernel and km.run_dir is None and km.cgroup is None


def test_a_kernel_needs_a_sandbox_uid(box):
    with pytest.raises(KernelStartFailed, match="sandbox_uid") as refused:
        run_nb(box, ["1"], sandbox_uid=None)
    assert isinstance(refused.value.__cause__, SandboxUnavailableError)


async def start_stop_as_grader(workdir: str, traits: dict) -> dict:
    """(In the grading account's process) start a kernel, run one line, stop it."""
    km = SandboxedKernelManager(kernel_name="python3", **traits)
    t0 = time.monotonic()
    await km.start_kernel(cwd=workdir)
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        started = time.monotonic() - t0
        reply = await kc.execute_interactive("import os; os.getuid()", timeout=30)
    finally:
        kc.stop_channels()
        await km.shutdown_kernel()
    return {"started": started, "status": reply["content"]["status"], "command": km.last_command,
            "run_dir": km.run_dir}


@needs_bwrap
def test_kernel_start_time(box):
    traits = {"cgroup_parent": box["cgroup_parent"]} if box["cgroup_parent"] else {}
    res = box["grader"].call(start_stop_as_grader, str(box["workdir"]), traits)
    print(f"sandboxed kernel ready after {res['started']:.2f} s (its zygote's start included)")
    assert res["status"] == "ok"
    assert res["started"] < 30
    cmd = res["command"]  # the zygote it was forked from runs under prlimit + bwrap
    assert cmd[0].endswith("prlimit") and cmd[cmd.index("--") + 1].endswith("bwrap")
    assert res["run_dir"] is None  # private run dir removed on shutdown


@needs_bwrap
def test_filesystem_network_and_env_isolation(box):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    repo_hidden = [str(REPO / n) for n in ("solutions", "grader_tests", "source", "gradebook", "autograded")]
    probe = f"""
import json, os, socket, sys
res = {{}}
def probe(name, fn):
    try:
        res[name] = ["ok", fn()]
    except BaseException as e:
        res[name] = ["err", type(e).__name__]
probe("secret", lambda: open({str(box["secret"])!r}).read())
probe("secret_dir", lambda: os.listdir({str(box["secret"].parent)!r}))
probe("repo_hidden", lambda: [p for p in {repo_hidden!r} if os.path.exists(p)])
probe("etc_shadow", lambda: open("/etc/shadow").read())
probe("home", lambda: os.listdir(os.path.expanduser("~")))
probe("tcp_local", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=3).close())
probe("tcp_internet", lambda: socket.create_connection(("1.1.1.1", 443), timeout=3).close())
probe("dns", lambda: socket.getaddrinfo("pypi.org", 443))
probe("write_cwd", lambda: open("written.txt", "w").write("hi"))
probe("write_venv", lambda: open(os.path.join(sys.prefix, "pwned"), "w").close())
probe("write_package", lambda: open({str(PACKAGE_DIR / "pwned.py")!r}, "w").close())
probe("import_package", lambda: __import__("interp_course").__name__)
def open_for_writing(path):
    os.close(os.open(path, os.O_WRONLY))  # never writes: only asks for write access
probe("sysctl", lambda: open_for_writing("/proc/sys/kernel/core_pattern"))
probe("uid", os.getuid)
probe("env", lambda: sorted(os.environ))
probe("flag", lambda: os.environ.get("COURSE_FLAG"))
print(json.dumps(res))
"""
    try:
        nb, _ = run_nb(
            box,
            [probe],
            readonly_paths=[str(PACKAGE_DIR)],
            extra_env={"COURSE_FLAG": "on", "PYTHONPATH": str(PACKAGE_DIR.parent)},
            grader_env={"GRADER_SECRET_TOKEN": "hunter2"},  # in the grader's environment, not the kernel's
        )
    finally:
        listener.close()
    assert errors(nb.cells[0]) == [], nb.cells[0].outputs
    res = json.loads(text(nb.cells[0]))
    print(res)
    assert res["secret"][0] == "err" and res["secret_dir"][0] == "err"
    assert res["repo_hidden"] == ["ok", []]
    assert res["etc_shadow"][0] == "err"
    # $HOME is an empty tmpfs: only IPython's profile dir and the parents of binds under it
    assert set(res["home"][1]) <= {".ipython", ".pyenv", ".cache", ".config", ".local"}, res["home"]
    for net in ("tcp_local", "tcp_internet", "dns"):
        assert res[net][0] == "err", (net, res[net])
    assert res["write_cwd"][0] == "ok"
    assert (box["workdir"] / "written.txt").read_text() == "hi"
    assert res["write_venv"][0] == "err" and res["write_package"][0] == "err"
    assert not (PACKAGE_DIR / "pwned.py").exists()
    assert res["import_package"] == ["ok", "interp_course"]
    assert res["sysctl"][0] == "err"  # /proc/sys is read-only (host-global knobs)
    assert res["uid"] == ["ok", 65534]
    assert "GRADER_SECRET_TOKEN" not in res["env"][1]
    assert res["flag"] == ["ok", "on"]


@needs_bwrap
def test_student_file_cannot_replace_the_kernel(box):
    (box["workdir"] / "ipykernel_launcher.py").write_text("raise SystemExit('fake kernel')\n")
    (box["workdir"] / "helper.py").write_text("VALUE = 7\n")
    nb, ep = run_nb(box, ["import helper; print(helper.VALUE)"])
    assert text(nb.cells[0]) == "7\n"
    assert ep.fault_log == []


@needs_bwrap
def test_torch_imports_and_computes(box):
    nb, _ = run_nb(
        box,
        ["import torch\nx = torch.arange(6.0).reshape(2, 3)\nprint((x @ x.T).sum().item())"],
        timeout=60,
    )
    assert errors(nb.cells[0]) == [], nb.cells[0].outputs
    assert text(nb.cells[0]) == "83.0\n"


@needs_bwrap
def test_kernel_death_is_a_cell_error_and_the_rest_still_runs(box):
    nb, ep = run_nb(
        box,
        [
            "import uuid\ntoken = uuid.uuid4().hex\nx = 41\nprint(token)",
            "import os\nos._exit(0)",
            "print(x + 1)",
            "print(token)",
        ],
    )
    first_token = text(nb.cells[0]).strip()
    assert errors(nb.cells[1]) == ["KernelDied"]
    assert "rest of the notebook was still run" in nb.cells[1].outputs[-1].evalue
    assert text(nb.cells[2]) == "42\n"
    # cell 0 was replayed in the new kernel (new token), and its replayed output was discarded
    assert text(nb.cells[3]).strip() not in ("", first_token)
    assert len(nb.cells[0].outputs) == 1
    assert [f["ename"] for f in ep.fault_log] == ["KernelDied"]


@needs_bwrap
def test_interrupt_swallowing_loop_is_killed_and_the_rest_still_runs(box):
    swallow = (
        "while True:\n"
        "    try:\n"
        "        while True:\n"
        "            pass\n"
        "    except BaseException:\n"
        "        pass"
    )
    nb, ep = run_nb(box, ["x = 41", swallow, "print(x + 1)"], timeout=2)
    assert errors(nb.cells[1]) == ["CellTimeout"]
    assert "did not respond to an interrupt" in nb.cells[1].outputs[-1].evalue
    assert text(nb.cells[2]) == "42\n"
    assert ep.elapsed < 20


@needs_bwrap
def test_interruptible_timeout_keeps_the_kernel(box):
    nb, ep = run_nb(
        box,
        ["import uuid\ntoken = uuid.uuid4().hex\nprint(token)", "import time\ntime.sleep(60)", "print(token)"],
        timeout=2,
    )
    assert errors(nb.cells[1]) == ["KeyboardInterrupt", "CellTimeout"]
    assert text(nb.cells[2]) == text(nb.cells[0])  # same kernel: nothing was replayed
    assert ep.fault_log == []


@needs_bwrap
def test_memory_hog_under_limit(box):
    nb, _ = run_nb(
        box,
        [
            "x = 41",
            "hog = bytearray(20 * 2**30)",
            "chunks = []\nwhile True:\n    chunks.append(bytearray(2**27))",
            "chunks = None\nprint(x + 1)",
        ],
        memory_limit_mb=2048,
    )
    for i in (1, 2):
        errs = errors(nb.cells[i])
        assert errs and errs[0] in ("MemoryError", "KernelDied"), nb.cells[i].outputs
    assert text(nb.cells[3]) == "42\n"


@needs_bwrap
def test_huge_output_is_truncated(box):
    nb, _ = run_nb(
        box,
        [
            "print('x' * 50_000_000)",
            "for i in range(100_000):\n    print(i)",
            "print('after')",
        ],
        executor={"max_output_chars": 100_000},
    )
    for cell in nb.cells[:2]:
        out = text(cell)
        assert len(out) < 101_000
        assert out.count("output truncated") == 1
    assert text(nb.cells[2]) == "after\n"


@needs_bwrap
def test_cell_that_dies_again_during_replay_is_skipped(box):
    first = (
        "import os\n"
        "if os.path.exists('replayed'):\n"
        "    os._exit(1)\n"
        "open('replayed', 'w').close()\n"
        "y = 1"
    )
    nb, ep = run_nb(box, [first, "x = 41", "import os; os._exit(3)", "print(x + 1)", "print(y)"])
    assert errors(nb.cells[2]) == ["KernelDied"]
    assert text(nb.cells[3]) == "42\n"
    assert errors(nb.cells[4]) == ["NameError"]  # cell 0 could not be replayed


@needs_bwrap
def test_processes_spawned_by_the_notebook_die_with_the_sandbox(box):
    marker = box["run"]  # any live process mentioning it fails the fixture's check
    spawn = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {marker!r}],\n"
        "                 start_new_session=True)\n"
        "import os\n"
        "if os.fork() == 0:\n"
        "    import time; time.sleep(600)"
    )
    nb, _ = run_nb(box, [spawn, "import os; os._exit(0)", "print('alive')"])
    assert errors(nb.cells[1]) == ["KernelDied"]
    assert text(nb.cells[2]) == "alive\n"


@needs_bwrap
def test_notebook_time_limit_bounds_slow_cells_kills_and_replays(box):
    # Two slow cells, then two kernel kills: each kill replays every completed cell, so without a
    # budget for the whole notebook this costs (slow cells) x (restarts + 1).
    cells = ["x = 41", "import time\ntime.sleep(4)", "time.sleep(4)",
             "import os\nos._exit(1)", "import os\nos._exit(1)", "print(x + 1)"]
    nb, ep = run_nb(box, cells, timeout=30, executor={"notebook_timeout": 12})
    assert ep.elapsed < 12 + 10  # the budget, plus the interrupt grace and one kernel stop
    assert errors(nb.cells[-1]) == ["NotebookTimeLimit"]
    assert "time limit of 12 s" in nb.cells[-1].outputs[-1].evalue
    assert errors(nb.cells[0]) == []  # what ran in time keeps its outputs
    assert len(ep.fault_log) <= 2


@needs_bwrap
def test_restarts_are_capped(box):
    kills = ["import os\nos._exit(1)"] * 5
    nb, ep = run_nb(box, ["x = 1", *kills, "print(x)"])
    assert len(ep.fault_log) == 4  # the fourth kill finds no restart left (max_kernel_restarts = 3)
    assert "failed 3 times" in nb.cells[-1].outputs[-1].evalue


async def models_probe_as_grader(hf_home: str, handin_dir: str, workdir: str, traits: dict) -> str:
    """(In the grading account's process) what GradeInSandbox's kernel sees of ``hf_home``."""
    from interp_course import models
    from interp_course.preprocessors.grade_in_sandbox import GradeInSandbox

    models.read_settings = lambda: {"model_source": "hub", "hf_home": hf_home}
    step = GradeInSandbox(config=Config({"SandboxedKernelManager": traits}))
    step._models, step._handin_dir = ("gpt2",), Path(handin_dir)
    step.nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    km = step.create_kernel_manager()
    probe = (
        "import os\nhome = os.environ['HF_HOME']\n"
        "def read(p):\n    try:\n        return open(p).read()\n    except OSError as e:\n        return type(e).__name__\n"
        "print(read(home + '/token'), read(home + '/hub/models--gpt2/weights.txt'),"
        " os.path.exists(home + '/hub/models--someone--private'))"
    )
    await km.start_kernel(cwd=workdir)
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        seen = []
        await kc.execute_interactive(probe, timeout=30, output_hook=lambda m: seen.append(m["content"].get("text", "")))
        return "".join(seen)
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)


@needs_bwrap
def test_grading_kernel_sees_only_the_declared_models_of_the_hf_home(box):
    grader = box["grader"]
    hf_home = grader.tmp / "hf"  # outside the runs folder, as the instructor's cache is
    (hf_home / "hub" / "models--gpt2").mkdir(parents=True)
    (hf_home / "hub" / "models--gpt2" / "weights.txt").write_text("public weights")
    (hf_home / "hub" / "models--someone--private").mkdir(parents=True)
    (hf_home / "token").write_text("hf_secret_token")  # what `huggingface-cli login` leaves
    grader.hand_over(hf_home)
    handin_dir = Path(box["run"]) / "run"
    (handin_dir / "outbox").mkdir(parents=True)
    grader.hand_over(handin_dir)
    traits = {"cgroup_parent": box["cgroup_parent"]} if box["cgroup_parent"] else {}
    seen = grader.call(models_probe_as_grader, str(hf_home), str(handin_dir), str(box["workdir"]), traits)
    assert seen.split() == ["FileNotFoundError", "public", "weights", "False"]
