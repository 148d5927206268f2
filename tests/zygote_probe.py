"""Run as the unprivileged grading account by tests/test_zygote.py: two zygote kernels side by side,
each probed from inside; prints one JSON object with what they saw and what the grader saw.

argv: <cgroup parent (absolute, delegated to this account)>
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time

from interp_course.sandbox import zygote as zg
from interp_course.sandbox.kernel_manager import SandboxedKernelManager, _zygotes

PROBE = r"""
import ctypes, json, os, socket
r = {}
st = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
r["ids"] = [os.getuid(), os.geteuid(), os.getgid()]
r["caps"] = sorted({st[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")})
r["no_new_privs"] = st["NoNewPrivs"].strip()
r["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
runs = os.environ["ZYGOTE_RUNS"]
r["runs"] = sorted(os.listdir(runs))
r["other_visible"] = [p for p in os.environ["OTHER_PATHS"].split(":") if os.path.exists(p)]
r["tmp"] = sorted(os.listdir("/tmp"))
open("/tmp/mine", "w").write("x")
open("mine.txt", "w").write("x")
libc = ctypes.CDLL(None, use_errno=True)
r["unshare_user"] = libc.unshare(0x10000000) == 0
r["umount_runs"] = libc.umount2(runs.encode(), 2) == 0
nets = {}
for host, port in (("127.0.0.1", int(os.environ["GRADER_PORT"])), ("8.8.8.8", 53)):
    try:
        socket.create_connection((host, port), timeout=2).close(); nets[host] = "connected"
    except OSError as e:
        nets[host] = type(e).__name__
r["net"] = nets
try:
    open("/proc/sys/kernel/core_pattern", "w").write("|/bin/true"); r["sysctl"] = "written"
except OSError as e:
    r["sysctl"] = type(e).__name__
import torch
r["torch_threads"] = torch.get_num_threads()
import jsonschema, sys
r["iri_checked"] = "iri" in jsonschema.FormatChecker().checkers
r["iri_grammars"] = repr(sys.modules.get("rfc3987_syntax", "never imported"))
print(json.dumps(r))
"""

FORK_LOOP = r"""
import os, time
n = 0
try:
    while n < 500:
        if os.fork() == 0:
            time.sleep(60); os._exit(0)
        n += 1
except OSError:
    pass
print("forks", n)
"""


async def execute(kc, code: str, timeout: float = 60) -> tuple[str, dict]:
    out: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append(msg["content"]["ename"])

    reply = await kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    return "".join(out), reply["content"]


async def main() -> dict:
    parent = sys.argv[1]
    res: dict = {"grader_uid": os.getuid()}
    runs = zg.runs_root()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    kms, kcs, works = [], [], []
    for name in ("alice", "bob"):
        work = os.path.join(runs, name, "work")
        os.makedirs(work)
        with open(os.path.join(runs, name, "answers.txt"), "w") as f:
            f.write(f"{name}'s data\n")
        works.append(work)
    t0 = time.monotonic()
    for i, work in enumerate(works):
        other = works[1 - i]
        km = SandboxedKernelManager(
            kernel_name="python3", cgroup_parent=parent, require_cgroup=True,
            # a module that is not there: the zygote starts without it (a renamed library must not
            # stop grading)
            zygote_preload=["torch", "transformer_lens", "interp_course_no_such_module"],
            cgroup_memory_limit_mb=768, cgroup_pids_limit=64,
            extra_env={"ZYGOTE_RUNS": runs, "GRADER_PORT": str(port),
                       "OTHER_PATHS": ":".join([other, os.path.dirname(other),
                                                os.path.join(os.path.dirname(other), "answers.txt")])},
        )
        t = time.monotonic()
        await km.start_kernel(cwd=work)
        kc = km.client()
        kc.start_channels()
        await kc.wait_for_ready(timeout=120)
        res.setdefault("start_s", []).append(round(time.monotonic() - t, 2))
        kms.append(km)
        kcs.append(kc)
    (zygote,) = _zygotes.values()
    res["zygote_threads"] = zygote.info.get("threads")
    res["zygote_missing"] = zygote.info.get("missing")
    res["zygote_log_hidden_path"] = zygote.log_path

    for i, (km, kc) in enumerate(zip(kms, kcs)):
        text, content = await execute(kc, PROBE)
        res[f"probe{i}"] = json.loads(text.strip().splitlines()[-1]) if content["status"] == "ok" else text
        res[f"in_cgroup{i}"] = km.cgroup is not None and km.provisioner.pid in km.cgroup.pids()
        mine = os.path.join(works[i], "mine.txt")
        res[f"file_owner{i}"] = os.stat(mine).st_uid if os.path.exists(mine) else None
    res["grader_sees_tmp_file"] = os.path.exists("/tmp/mine")

    # interrupt by message: the cell stops, the kernel lives on
    kc = kcs[0]
    # stop_on_error=False, as nbclient sends cells when errors are allowed (nbgrader's case): with
    # True, ipykernel aborts the requests that reach it before it has finished handling the
    # KeyboardInterrupt, and on a loaded machine the next one below can be among them.
    msg_id = kc.execute("import time; time.sleep(60)", stop_on_error=False)
    await asyncio.sleep(1.5)
    await kms[0].interrupt_kernel()
    reply = await kc.get_shell_msg(timeout=20)
    res["interrupt"] = [reply["parent_header"].get("msg_id") == msg_id, reply["content"].get("ename")]
    # The answer travels in the execute reply itself: a printed line comes on iopub and, on a
    # loaded machine, can come after the kernel already said it is idle.
    reply = await kc.execute_interactive("alive = 'ali' + 've'", user_expressions={"alive": "alive"}, timeout=60)
    value = reply["content"].get("user_expressions", {}).get("alive", {})
    res["alive_after_interrupt"] = value.get("data", {}).get("text/plain", f"{reply['content'].get('status')}: {value}").strip("'")

    # pids limit of the kernel's own cgroup
    text, _ = await execute(kcs[1], FORK_LOOP)
    res["forks"] = int(text.split()[-1]) if text.startswith("forks") else text
    res["pids_stats"] = kms[1].cgroup_stats().__dict__

    # memory limit: the kernel is killed at its cgroup's limit, not the zygote, not the neighbour
    try:
        await execute(kcs[0], "x = bytearray(1200 * 2**20)\nprint('allocated')", timeout=10)
    except Exception as exc:  # noqa: BLE001
        res["mem_exc"] = type(exc).__name__
    await asyncio.sleep(1)
    res["mem_kernel_alive"] = await kms[0].is_alive()
    res["mem_exit"] = kms[0].provisioner.process.poll() if kms[0].provisioner and kms[0].provisioner.process else None
    res["mem_stats"] = kms[0].cgroup_stats().__dict__
    res["neighbour_alive"] = await kms[1].is_alive()
    res["zygote_alive"] = zygote.alive()

    # restart = a new fork: nothing of the previous kernel's /tmp, a fresh pid namespace
    kcs[0].stop_channels()
    await kms[0].restart_kernel(now=True)
    kc = kms[0].client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=60)
    text, _ = await execute(kc, "import os; print(sorted(os.listdir('/tmp')), os.path.exists('/tmp/mine'))")
    res["after_restart"] = text.strip()
    kcs[0] = kc

    pids = [km.provisioner.pid for km in kms]
    cgroups = [km.cgroup for km in kms]
    for km, kc in zip(kms, kcs):
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
    res["left_running"] = [p for p in pids if os.path.exists(f"/proc/{p}") and
                           open(f"/proc/{p}/stat").read().split()[2] != "Z"]
    res["cgroups_removed"] = [cg.removed for cg in cgroups]
    res["total_s"] = round(time.monotonic() - t0, 1)
    return res


if __name__ == "__main__":
    print("RESULT " + json.dumps(asyncio.run(main())), flush=True)
