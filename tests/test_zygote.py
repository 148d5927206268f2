"""Zygote kernels (interp_course/sandbox/zygote.py): the one way a kernel starts, in grading and in tests.

The zygote needs an unprivileged grader (run by root, bwrap covers parts of /proc and Linux then
refuses each forked kernel its own /proc), so the kernels run in ``tests/zygote_probe.py`` as the
grading account, under a cgroup parent that root delegates to it, as on a real grading machine.
Two kernels are forked from one zygote side by side; each is probed from inside.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from interp_course.security import grader_user
from interp_course.sandbox.cgroups import V1, CgroupUnavailable, open_parent, prepare_delegated_parent

ROOT = Path(__file__).resolve().parent.parent


def _why_not() -> str:
    """Why the probe cannot run here ("" where it can: root, the grading account, cgroup v1)."""
    if os.geteuid() != 0:
        return "the probe runs as the grading account and in a cgroup parent delegated to it: needs root"
    try:
        grader_user.account()
    except grader_user.AccountMissing:
        return f"needs the grading account {grader_user.ACCOUNT}: run `make setup`"
    try:
        version = open_parent().version
    except CgroupUnavailable as exc:
        return f"no cgroup for the probe's kernels here ({exc})"
    if version != V1:
        return ("cgroup v2 here: the grading account may move its kernels into their cgroups only "
                "within a delegated subtree it runs in (systemd Delegate=yes), not beside it as this "
                "probe's parent is made; the probe is verified on cgroup v1")
    return ""


needs_root_v1 = pytest.mark.skipif(bool(_why_not()), reason=_why_not() or "usable")


@pytest.fixture(scope="module")
def probe() -> dict:
    user = pwd.getpwnam(grader_user.ACCOUNT)
    parent = f"/interp-course-zygote-test-{secrets.token_hex(3)}"
    dirs = prepare_delegated_parent(user.pw_uid, parent=parent)
    try:
        env = {"PATH": "/usr/bin:/bin", "HOME": user.pw_dir, "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
        out = subprocess.run(
            grader_user.command([sys.executable, str(ROOT / "tests" / "zygote_probe.py"), parent]),
            env=env, cwd="/", capture_output=True, text=True, timeout=400,
        )
        lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        assert out.returncode == 0 and lines, out.stdout[-3000:] + out.stderr[-3000:]
        res = json.loads(lines[-1][len("RESULT "):])
        print(json.dumps(res, indent=1))
        return res
    finally:
        for d in dirs:
            for child in os.listdir(d):
                if child.startswith("sbx-"):
                    try:
                        os.rmdir(os.path.join(d, child))
                    except OSError:
                        pass
            os.rmdir(d)


@needs_root_v1
def test_zygote_forks_kernels_quickly_and_holds_no_threads(probe):
    assert probe["zygote_threads"] == 1
    first, second = probe["start_s"]
    assert second < first  # the second kernel is a fork: no interpreter start, no imports


@needs_root_v1
def test_a_preload_module_that_is_not_there_is_skipped_not_fatal(probe):
    # the probe's kernels ran (the tests below) from a zygote told to import a missing module
    assert probe["zygote_missing"] == ["interp_course_no_such_module"]
    assert probe["zygote_threads"] == 1


@needs_root_v1
@pytest.mark.parametrize("i", [0, 1])
def test_zygote_kernels_go_without_the_iri_grammars(probe, i):
    # the zygote skips jsonschema's optional IRI checks (~0.9 s of its imports; lean_imports.py)
    p = probe[f"probe{i}"]
    assert p["iri_grammars"] == "None" and p["iri_checked"] is False


@needs_root_v1
@pytest.mark.parametrize("i", [0, 1])
def test_kernel_sees_only_its_own_run(probe, i):
    p = probe[f"probe{i}"]
    own = "alice" if i == 0 else "bob"
    # the runs folder holds only this kernel's run folder and its socket folder
    assert own in p["runs"] and len(p["runs"]) == 2 and all(r in (own,) or r.startswith("nbsbx-") for r in p["runs"])
    assert p["other_visible"] == []  # not the neighbour's scratch folder, its run folder or its data
    assert not any(name.startswith("zygote") for name in p["runs"])  # nor the zygote's log
    assert p["pids"] == [1, 2]  # its own pid namespace: neither the zygote nor the neighbour
    assert p["tmp"] == [Path(probe["zygote_log_hidden_path"]).parent.name] or p["tmp"] == []


@needs_root_v1
@pytest.mark.parametrize("i", [0, 1])
def test_kernel_is_unprivileged_and_offline(probe, i):
    p = probe[f"probe{i}"]
    assert p["ids"] == [65534, 65534, 65534]
    assert probe[f"file_owner{i}"] == pwd.getpwnam(grader_user.ACCOUNT).pw_uid  # maps to the grading account
    assert p["caps"] == ["0000000000000000"] and p["no_new_privs"] == "1"
    assert p["unshare_user"] is False  # no further user namespaces (as bwrap --disable-userns)
    assert p["umount_runs"] is False  # the mounts hiding other runs are locked
    assert p["sysctl"] != "written"
    assert p["net"] == {"127.0.0.1": "ConnectionRefusedError", "8.8.8.8": "OSError"}  # not the grader's port
    assert p["torch_threads"] >= 1
    assert probe["grader_sees_tmp_file"] is False


@needs_root_v1
def test_kernel_is_held_by_its_own_cgroup(probe):
    assert probe["in_cgroup0"] and probe["in_cgroup1"]
    assert probe["forks"] < 64 and probe["pids_stats"]["pids_limit_hits"] >= 1
    assert probe["mem_kernel_alive"] is False and probe["mem_exit"] == 137
    assert probe["mem_stats"]["oom_kills"] >= 1
    assert probe["neighbour_alive"] and probe["zygote_alive"]  # one kernel's limit hits only it


@needs_root_v1
def test_interrupt_restart_and_cleanup(probe):
    assert probe["interrupt"] == [True, "KeyboardInterrupt"] and probe["alive_after_interrupt"] == "alive"
    assert "False" in probe["after_restart"]  # a restart is a new fork with a fresh /tmp
    assert probe["left_running"] == [] and probe["cgroups_removed"] == [True, True]


def test_kernels_have_one_launch_path_and_the_plain_sandbox_is_unchanged():
    """Every kernel forks from the zygote: there is no switch to start kernels with bwrap instead
    (as root, where a zygote cannot fork kernels, none starts: test_sandbox_execute). The plain
    sandbox command, which starts the zygote itself and the figures' Chromium, keeps its limits."""
    from interp_course.sandbox.kernel_manager import SandboxedKernelManager

    km = SandboxedKernelManager()
    assert "zygote" not in km.trait_names() and not hasattr(km, "uses_zygote")
    cmd = km.build_sandbox_command(["python", "-c", "pass"])
    assert "--disable-userns" in cmd and "/proc/sys" in cmd
