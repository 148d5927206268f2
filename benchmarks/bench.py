"""`make bench`: seconds per submission of `make grade`, measured side by side with stock nbgrader.

A tool of this repository, not part of the installed package (it names the course's assignment).

In one run on this machine, in scratch courses under $TMPDIR, each grading the same N copies of
the corpus's full-marks notebook with the same three steps (autograde, generate_feedback,
export):

1. `make grade` as shipped (sandbox, unprivileged account, cgroups, kernels forked from a
   zygote), ``--workers`` = the cores, every notebook run afresh (``--no-cache``);
2. the same with one worker, for the scale-out ratio: of the whole batch, and of the runs alone
   (runs per minute once every worker has done one, from the progress lines: without the
   batch's fixed costs, which no number of workers shrinks), and the cores the machine kept busy
   in each: one worker already keeps more than one core busy (nbgrader's passes and the figures
   run beside its kernel), which bounds what more workers can gain;
3. the same batch again with its runs kept: judged without a kernel (a regrade); then with 2N
   more students handing in copies of those notebooks (their runs are kept too): the cost per
   student of a bigger class, where the fixed cost of the three nbgrader commands is spread wider;
4. stock nbgrader (its own ``Execute``: no sandbox, the test cells in the kernel) on the same
   notebook. Its test cells find no grader to hand in to and raise, so it does a little less
   work than a real stock grader would: the ratio against it is, if anything, pessimistic;
5. stock nbgrader on a notebook that only does ``import torch``.

It prints each figure and the ratios the scale targets are stated in.

``--full-size`` (``make bench FULL_SIZE=1``) instead grades N (default 6) copies at real scale, on
the full-size stand-ins (``grader_tests.puzzle1.standins --full-size``, built on first use; their W_E
cached as ``make setup`` caches a course's models), with fresh kernels, first with one worker,
then with a worker per core, then once more from the kept runs, and prints seconds per
submission of each, the throughput ratio, and the peak memory of the grading kernel (its sandbox
cgroup's peak, against the 6 GiB cap) and of the grader's processes (sampled with one worker).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat

from interp_course import cli, models
from interp_course.security import grader_user
from interp_course.course import CHECKOUT, Course

ASSIGNMENT = "puzzle1"


def _course(dest: Path, extra_config: str = "") -> Course:
    """A scratch course: the engine's config (plus ``extra_config``) and Puzzle 1's content, released."""
    dest.mkdir(mode=0o755)
    shutil.copy(CHECKOUT / "nbgrader_config.py", dest)
    if extra_config:
        with open(dest / "nbgrader_config.py", "a") as f:
            f.write(extra_config)
    content = Course(CHECKOUT)
    shutil.copytree(content.source(ASSIGNMENT), dest / "source" / ASSIGNMENT)
    shutil.copytree(content.solutions(ASSIGNMENT), dest / "solutions" / ASSIGNMENT)
    shutil.copytree(content.grader_tests(ASSIGNMENT), dest / "grader_tests" / ASSIGNMENT,
                    ignore=shutil.ignore_patterns("submissions", "__pycache__"))
    course = Course(dest)
    cli.release(course, [ASSIGNMENT])
    return course


def _submit(root: Path, assignment: str, notebook: Path, n: int, name: str) -> None:
    """``n`` students handing in ``notebook`` as ``name``, each copy with its own comment in a
    code cell: identical notebooks would share one kept run, and be run only once."""
    nb = nbformat.read(notebook, as_version=4)
    # A student's own (solution) cell: nbgrader would overwrite a locked one with the source's.
    first = next((cell for cell in nb.cells if cell.cell_type == "code"
                  and cell.metadata.get("nbgrader", {}).get("solution")), None) or nb.cells[0]
    source = first.source
    for i in range(n):
        first.source = f"{source}\n# copy {i}"
        target = root / "submitted" / f"student{i:03d}" / assignment / name
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)


PROGRESS = re.compile(r"\] (\d+)/\d+")  # a progress line of the batch: "[####....] 3/8  ..."


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, all) CPU time of the whole machine so far, in jiffies, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]  # user .. steal (guest is within user)
    return sum(fields) - fields[3] - fields[4], sum(fields)  # less idle and iowait


def _timed(argv: list[str], cwd: Path, env: dict, finished: list | None = None, cpu: dict | None = None,
           output: list | None = None, watch: "PeakSampler | None" = None) -> float:
    """Seconds ``argv`` took; ``finished`` gets (seconds since the start, runs finished) for each
    progress line it printed; ``cpu`` gets the cores the machine kept busy meanwhile, on average;
    ``output`` its lines; ``watch`` samples its processes' memory while it runs."""
    busy_before, all_before = _cpu_jiffies()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if watch is not None:
        watch.watch(proc.pid)
    lines = output if output is not None else []
    for line in proc.stdout:
        lines.append(line)
        found = PROGRESS.search(line)
        if found and finished is not None:
            finished.append((time.perf_counter() - start, int(found[1])))
    status = proc.wait()
    seconds = time.perf_counter() - start
    if watch is not None:
        watch.stop()
    if status != 0:
        raise SystemExit(f"bench: {' '.join(argv[:6])}... failed ({status}):\n{''.join(lines)[-4000:]}")
    if cpu is not None:
        busy_after, all_after = _cpu_jiffies()
        cpu["busy cores"] = (os.cpu_count() or 1) * (busy_after - busy_before) / max(1, all_after - all_before)
    return seconds


def ours(root: Path, *options: str, finished: list | None = None, cpu: dict | None = None) -> float:
    env = {**cli.nbgrader_env(), "TMPDIR": str(root.parent)}
    return _timed([sys.executable, "-m", "interp_course", "--root", str(root), "grade", *options], root, env,
                  finished, cpu)


def steady_rate(finished: list[tuple[float, int]], workers: int) -> float:
    """Runs per minute from the moment every worker has finished its first run (its zygote started,
    its first figures drawn) to the last run: what ``WORKERS`` scales, without the batch's fixed
    costs (the nbgrader passes, starting workers)."""
    first = next((t, k) for t, k in finished if k >= workers)
    last = finished[-1]
    return 60 * (last[1] - first[1]) / (last[0] - first[0]) if last[1] > first[1] else float("nan")


def stock(root: Path, assignment: str) -> float:
    """Stock nbgrader's three steps, as the grading account; the course guard is not loaded."""
    env = {**cli.nbgrader_env(), **models.model_env(), "JUPYTER_NO_CONFIG": "1", "TMPDIR": str(root.parent)}
    grader_user.hand_over(root)
    total = 0.0
    for step in (["autograde", assignment, "--create", "--force"], ["generate_feedback", assignment, "--force"],
                 ["export"]):
        argv, step_env = [sys.executable, "-m", "nbgrader", *step, "--log-level=ERROR"], env
        if grader_user.is_root():  # the account's scrubbed environment, still without the guard
            argv, step_env = grader_user.command(argv), {**grader_user.environment(env), "JUPYTER_NO_CONFIG": "1"}
        total += _timed(argv, root, step_env)
    return total


def _stock_course(dest: Path, assignment: str, source: Path) -> Path:
    """A course with stock nbgrader's default pipeline: only a course id and a cell timeout."""
    (dest / "source" / assignment).mkdir(parents=True)
    shutil.copy(source, dest / "source" / assignment / source.name)
    (dest / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.course_id = 'bench-stock'\nc.Execute.timeout = 120\n")
    env = {**cli.nbgrader_env(), "JUPYTER_NO_CONFIG": "1"}
    _timed([sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force", "--log-level=ERROR"],
           dest, env)
    return dest


# --------------------------------------------------------------------------- real scale (FULL_SIZE=1)

_MiB = 2**20


def _proc_status(pid: int) -> dict[str, int]:
    """VmHWM (peak resident) and VmPeak (peak address space) of a process, in bytes."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmPeak"):
                    out[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return out


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(name))
    return tree


def _role(pid: int, kernel_pids: set[int]) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    if "figure_worker" in cmd or "chromium" in cmd:
        return "figures"  # its own sandbox and cgroup (2 GiB); Chromium reserves terabytes of address space
    if pid in kernel_pids or "ipykernel" in cmd:
        return "kernel"  # (a zygote kernel has its zygote's command line; the zygote counts as one too)
    if "-m nbgrader" in cmd or "interp_course.grading.nbgrader_cli" in cmd:
        return "nbgrader"
    return "other"


class PeakSampler(threading.Thread):
    """Every ``interval`` s: the memory peak of each sandbox cgroup under ``cgroup_dir`` and VmHWM /
    VmPeak of each process under ``root_pid``. All are high-water marks, so only growth in the last
    interval before a process or cgroup ends can be missed."""

    def __init__(self, cgroup_dir: str | None, interval: float = 0.1):
        super().__init__(daemon=True)
        self.root_pid, self.cgroup_dir, self.interval = 0, cgroup_dir, interval
        self.done = threading.Event()
        self.cgroups: dict[str, dict] = {}  # sandbox cgroup -> {"peak", "limit"} (bytes)
        self.processes: dict[int, dict] = {}  # pid -> {"role", "VmHWM", "VmPeak"}

    def watch(self, root_pid: int) -> None:
        """Start sampling ``root_pid`` and its descendants."""
        self.root_pid = root_pid
        self.start()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self.done.set()
        self.join()

    def _sample_cgroups(self) -> set[int]:
        kernel_pids: set[int] = set()
        for d in Path(self.cgroup_dir).glob("sbx-*") if self.cgroup_dir else ():
            # v1: memory + swap where accounted, as cgroups.SandboxCgroup.stats() reads; v2: memory.peak
            for peak_file, limit_file in (("memory.memsw.max_usage_in_bytes", "memory.memsw.limit_in_bytes"),
                                          ("memory.max_usage_in_bytes", "memory.limit_in_bytes"),
                                          ("memory.peak", "memory.max")):
                try:
                    peak = int((d / peak_file).read_text())
                    limit = (d / limit_file).read_text().strip()
                except (OSError, ValueError):
                    continue
                seen = self.cgroups.setdefault(d.name, {"peak": 0, "limit": None})
                seen["peak"] = max(seen["peak"], peak)
                seen["limit"] = int(limit) if limit.isdigit() else None
                break
            try:
                kernel_pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                pass
        return kernel_pids

    def sample(self) -> None:
        kernel_pids = self._sample_cgroups()
        tree, todo, pids = _children(), [self.root_pid], []
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo.extend(tree.get(pid, ()))
        for pid in pids:
            status, role = _proc_status(pid), _role(pid, kernel_pids)
            if not status or role == "gone":
                continue
            seen = self.processes.setdefault(pid, {"VmHWM": 0, "VmPeak": 0})
            seen["role"] = role  # setpriv and spawn exec into what they start: the last role counts
            for key, value in status.items():
                seen[key] = max(seen[key], value)

    def peak(self, role: str, key: str = "VmHWM") -> int:
        return max((p[key] for p in self.processes.values() if p["role"] == role), default=0)


def _delegated_cgroup_parent() -> str | None:
    """As root: a parent cgroup of its own handed to the grading account, as a real deployment
    configures (cgroups.prepare_delegated_parent), so that the sandbox's memory cap is in force and
    its peak can be read. None where that cannot be done (not root, no cgroups)."""
    from interp_course.sandbox import cgroups

    if not grader_user.is_root():
        return None
    parent = f"/interp-course-bench-{os.getpid()}"
    try:
        cgroups.prepare_delegated_parent(grader_user.ACCOUNT, parent=parent)
    except (cgroups.CgroupUnavailable, OSError) as exc:
        print(f"  (no cgroup for the sandboxes: {exc})")
        return None
    return parent


def _submit_distinct(root: Path, notebook: Path, n: int) -> None:
    """``n`` students handing in the notebook, each with a comment of their own in its first answer
    cell: identical notebooks share one kept run, and each copy must run its own kernel here."""
    for i in range(n):
        nb = nbformat.read(notebook, as_version=4)
        cell = next(c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution"))
        cell.source += f"\n# copy {i}"
        target = root / "submitted" / f"student{i:03d}" / ASSIGNMENT / "puzzle1.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)


def full_size(n: int, hf_home: Path, base: Path) -> dict:
    """Grade ``n`` copies of the full-marks notebook on the full-size stand-ins; the figures."""
    from interp_course.sandbox import cgroups
    from grader_tests.puzzle1.standins import build_standins

    start = time.perf_counter()
    built = build_standins(hf_home, full_size=True)
    shapes = ", ".join(f"{m} {s['vocab_size']}x{s['d_model']}" for m, s in built.items())
    print(f"  full-size stand-ins in {hf_home} ({shapes}): "
          f"{'built' if any(s['built'] for s in built.values()) else 'up to date'} in {time.perf_counter() - start:.0f} s",
          flush=True)
    if grader_user.is_root():
        grader_user.grant_traversal([hf_home])
    # As `make setup` does for the course's models: W_E of each in .cache/w_e, so that the grader's
    # nbgrader passes load it rather than boot the model (~7 s each, in both passes of a batch).
    start = time.perf_counter()
    cli.cache_embeddings({"model_source": "hf-home", "hf_home": str(hf_home), "offline": True},
                         {models.HF_HOME_OVERRIDE: str(hf_home)})
    print(f"  W_E of each model in {models.W_E_CACHE}, as `make setup` caches it: {time.perf_counter() - start:.0f} s",
          flush=True)
    parent = _delegated_cgroup_parent()
    config = (f"\n# make bench FULL_SIZE=1: a delegated cgroup, so the sandbox's memory cap holds\n"
              f"c.SandboxedKernelManager.cgroup_parent = {parent!r}\n"
              "c.SandboxedKernelManager.require_cgroup = True\n") if parent else ""
    cg_parent = cgroups.open_parent(parent=parent) if parent else None
    cgroup_dir = cg_parent.dirs["memory" if cg_parent.version == cgroups.V1 else "unified"] if cg_parent else None
    try:
        course = _course(base / "full-size", extra_config=config)
        _submit_distinct(course.root, Course(CHECKOUT).corpus(ASSIGNMENT) / "full-marks.ipynb", n)
        env = {**cli.nbgrader_env(), "TMPDIR": str(base), models.HF_HOME_OVERRIDE: str(hf_home)}
        grade = [sys.executable, "-m", "interp_course", "--root", str(course.root), "grade"]
        argv = [*grade, "--no-cache", "--workers"]
        # 1. One worker, its memory sampled: the peaks of one kernel at a time.
        sampler, output, finished_one, cpu_one = PeakSampler(cgroup_dir), [], [], {}
        seconds = _timed([*argv, "1"], course.root, env, finished_one, cpu_one, output, watch=sampler)
        scores = {line.split()[1] for line in output if line.startswith("student")}
        print(f"  1 worker: graded in {seconds:.0f} s; autograded score of each copy: {', '.join(sorted(scores))}",
              flush=True)
        for line in output:
            if line.startswith(("Grading with", "Kernels:")):
                print(f"  {line.rstrip()}")
        # 2. The same batch again with a worker per core: the scale-out at real scale, where the
        #    kernels are most of the work.
        cores, finished_all, cpu_all = os.cpu_count() or 1, [], {}
        seconds_all = _timed([*argv, str(cores)], course.root, env, finished_all, cpu_all)
        print(f"  {cores} workers: graded in {seconds_all:.0f} s", flush=True)
        # 3. Once more, the runs kept: a regrade at real scale.
        seconds_regrade = _timed(grade, course.root, env)
        print(f"  again, runs kept: graded in {seconds_regrade:.0f} s", flush=True)
    finally:
        if cg_parent:
            for d in cg_parent.dirs.values():
                try:
                    os.rmdir(d)
                except OSError:
                    pass
    # The kernels' (and their zygote's) cgroups have the largest cap; the figure sandboxes' is smaller.
    cap = max((c["limit"] or 0 for c in sampler.cgroups.values()), default=0) or None
    kernels = [c for c in sampler.cgroups.values() if c["limit"] == cap]
    return {
        "seconds": seconds / n,
        "seconds all": seconds_all / n,
        "regrade": seconds_regrade / n,
        "workers": cores,
        "busy": cpu_all["busy cores"],
        "busy 1": cpu_one["busy cores"],
        "steady": steady_rate(finished_all, cores),
        "steady 1": steady_rate(finished_one, 1),
        "sandboxes": len(kernels),
        "kernel cgroup peak": max((c["peak"] for c in kernels), default=0),
        "kernel cap": cap,
        "kernel VmHWM": sampler.peak("kernel"),
        "kernel VmPeak": sampler.peak("kernel", "VmPeak"),
        "nbgrader VmHWM": sampler.peak("nbgrader"),
    }


def print_full_size(n: int, f: dict) -> None:
    mib = lambda b: f"{b / _MiB:,.0f} MiB"  # noqa: E731
    print(f"\nReal scale: {n} submission(s), fresh kernels, on {os.cpu_count()} cores "
          f"(load average {os.getloadavg()[0]:.1f}):")
    print(f"  seconds per submission (autograde, feedback, export), 1 worker: {f['seconds']:.1f}")
    print(f"  grading kernel: sandbox cgroup peak {mib(f['kernel cgroup peak'])} (max of {f['sandboxes']} kernel and "
          f"zygote sandboxes); "
          f"kernel process peak RSS {mib(f['kernel VmHWM'])}")
    # In cgroup v1 a page of the model files is charged to whoever read it first (often the grader,
    # which loaded W_E before): the kernel's own RSS, all of it charged, is the cautious figure.
    worst = max(f["kernel cgroup peak"], f["kernel VmHWM"])
    if f["kernel cap"]:
        print(f"    against the sandbox's {mib(f['kernel cap'])} memory cap, at the larger of the two: "
              f"{mib(f['kernel cap'] - worst)} ({1 - worst / f['kernel cap']:.0%}) to spare")
    else:
        print("    no sandbox cgroup could be used, so the memory cap was not in force (see above)")
    from interp_course.sandbox.kernel_manager import SandboxedKernelManager

    rlimit_as = SandboxedKernelManager.memory_limit_mb.default_value * _MiB  # per process
    print(f"  grading kernel process: peak address space {mib(f['kernel VmPeak'])} of its {mib(rlimit_as)} "
          f"RLIMIT_AS: {mib(rlimit_as - f['kernel VmPeak'])} to spare")
    print(f"  grader: peak RSS of an nbgrader process (the batch's autograde included) {mib(f['nbgrader VmHWM'])}")
    cores = f["workers"]
    print(f"  the same batch with {cores} workers: {f['seconds all']:.1f} s per submission; cores busy on average "
          f"{f['busy']:.2f} with {cores} workers, {f['busy 1']:.2f} with 1")
    print(f"  throughput, {cores} workers / 1 worker:   {f['seconds'] / f['seconds all']:.2f} (>= 1.7)")
    print(f"  the same, the runs alone:             {f['steady'] / f['steady 1']:.2f} "
          "(without the batch's fixed costs)")
    print(f"  regrade from kept runs:               {f['regrade']:.2f} s/submission (<= 1)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--submissions", type=int, default=None, help="default: 8; 6 with --full-size")
    parser.add_argument("--full-size", action="store_true",
                        help="only the real-scale report: time and peak memory on the full-size stand-ins")
    parser.add_argument("--hf-home", type=Path, default=models.FULL_SIZE_HF_HOME,
                        help="where the full-size stand-ins are (built there if missing)")
    args = parser.parse_args(argv)
    if args.full_size:
        n = args.submissions or 6
        base = Path(tempfile.mkdtemp(prefix="interp-bench-"))
        base.chmod(0o755)
        print(f"Benchmark at real scale: {n} copies of full-marks.ipynb, in {base}", flush=True)
        try:
            figures = full_size(n, args.hf_home.resolve(), base)
        finally:
            shutil.rmtree(base, ignore_errors=True)
        print_full_size(n, figures)
        return 0
    n, cores = args.submissions or 8, os.cpu_count() or 1
    full_marks = Course(CHECKOUT).corpus(ASSIGNMENT) / "full-marks.ipynb"
    base = Path(tempfile.mkdtemp(prefix="interp-bench-"))
    base.chmod(0o755)
    print(f"Benchmark: {n} copies of {full_marks.name}, {cores} cores, in {base}", flush=True)
    try:
        course = _course(base / "ours")
        _submit(course.root, ASSIGNMENT, full_marks, n, "puzzle1.ipynb")
        figures = {}
        finished_all, finished_one = [], []  # (seconds, runs finished) of each progress line
        cpu_all, cpu_one = {}, {}
        figures["make grade"] = ours(course.root, "--workers", str(cores), "--no-cache", finished=finished_all,
                                     cpu=cpu_all) / n
        print(f"  make grade, {cores} workers, fresh kernels: {figures['make grade']:.2f} s/submission", flush=True)
        figures["one worker"] = ours(course.root, "--workers", "1", "--no-cache", finished=finished_one, cpu=cpu_one) / n
        print(f"  make grade, 1 worker, fresh kernels:  {figures['one worker']:.2f} s/submission", flush=True)
        # With one worker, nbgrader's passes (planning, judging, feedback) and the figures already
        # use the other cores beside the kernel: the same work on all cores can be at most
        # cores / (cores busy with one worker) times as fast.
        figures["busy"], figures["busy 1"] = cpu_all["busy cores"], cpu_one["busy cores"]
        print(f"  cores busy on average: {figures['busy']:.2f} of {cores} with {cores} workers, "
              f"{figures['busy 1']:.2f} with 1 (CPU time per submission {figures['busy'] * figures['make grade']:.2f} "
              f"and {figures['busy 1'] * figures['one worker']:.2f} s)", flush=True)
        figures["steady"], figures["steady 1"] = steady_rate(finished_all, cores), steady_rate(finished_one, 1)
        print(f"  the runs alone, once each worker has done one: {figures['steady']:.1f} notebooks/min with "
              f"{cores} workers, {figures['steady 1']:.1f} with 1", flush=True)
        figures["regrade"] = ours(course.root) / n
        print(f"  make grade again, runs kept:          {figures['regrade']:.2f} s/submission", flush=True)
        # A bigger class: 2n more students hand in copies of those notebooks, whose runs are kept.
        for i in range(n, 3 * n):
            shutil.copytree(course.submitted / f"student{i % n:03d}", course.submitted / f"student{i:03d}")
        figures["regrade 3n"] = ours(course.root) / (3 * n)
        figures["marginal"] = (figures["regrade 3n"] * 3 * n - figures["regrade"] * n) / (2 * n)
        print(f"  the same with {3 * n} students, runs kept:  {figures['regrade 3n']:.2f} s/submission "
              f"(each student beyond {n}: {figures['marginal']:.2f} s)", flush=True)
        stock_root = _stock_course(base / "stock", ASSIGNMENT, course.source(ASSIGNMENT) / "puzzle1.ipynb")
        _submit(stock_root, ASSIGNMENT, full_marks, n, "puzzle1.ipynb")
        figures["stock"] = stock(stock_root, ASSIGNMENT) / n
        print(f"  stock nbgrader, same notebook:        {figures['stock']:.2f} s/submission", flush=True)

        trivial = base / "trivial.ipynb"
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch")]), trivial)
        trivial_root = _stock_course(base / "stock-trivial", "trivial", trivial)
        _submit(trivial_root, "trivial", trivial, n, "trivial.ipynb")
        figures["trivial"] = stock(trivial_root, "trivial") / n
        print(f"  stock nbgrader, `import torch` only:  {figures['trivial']:.2f} s/submission", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("\nRatios (targets in parentheses):")
    print(f"  make grade / stock nbgrader, same notebook:   {figures['make grade'] / figures['stock']:.2f} (<= 0.5)")
    print(f"  make grade / stock nbgrader, `import torch`:  {figures['make grade'] / figures['trivial']:.2f} (<= 1.0)")
    print(f"  throughput, {cores} workers / 1 worker:         {figures['one worker'] / figures['make grade']:.2f} (>= 1.7; "
          f"at most {cores / figures['busy 1']:.2f} here: {cores} cores / {figures['busy 1']:.2f} busy with 1 worker)")
    print(f"  the same, the runs alone:                     {figures['steady'] / figures['steady 1']:.2f} "
          "(without the batch's fixed costs)")
    print(f"  regrade from kept runs:                       {figures['regrade']:.2f} s/submission (<= 1)")
    print(f"  regrade from kept runs, {3 * n} students:          {figures['regrade 3n']:.2f} s/submission "
          f"({figures['marginal']:.2f} s for each student beyond {n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
