"""Fault-tolerant, sandboxed notebook execution: nbgrader's ``Execute``, made resilient.

:class:`ResilientExecute` is the base of :class:`GradeInSandbox` (which adds the hand-in and
the judging); on its own it is a drop-in replacement for ``nbgrader.preprocessors.Execute``.
Settings are traitlets, e.g. ``c.Execute.timeout = 120`` (per cell) and
``c.SandboxedKernelManager.memory_limit_mb`` in ``nbgrader_config.py``.

It overrides nbclient internals (``_async_poll_for_reply``, ``_async_handle_timeout``,
``output``, ``clear_output``), written against nbclient 0.11.0 as pinned in pyproject.toml:
re-read them when that pin moves.

Differences from the stock ``Execute``:

* The kernel runs in a bubblewrap sandbox
  (:class:`interp_course.sandbox.kernel_manager.SandboxedKernelManager`).
* Faults become a grade instead of dropping the submission.  When a cell
  **kills the kernel** (``os._exit``, a segfault, the OOM killer...) or **times
  out and does not react to the interrupt within** ``interrupt_grace`` seconds,
  the cell gets an error output (``KernelDied`` / ``CellTimeout``), the kernel is
  killed, a fresh kernel is started, the code cells that had completed before
  are silently re-run (their new outputs are discarded) so that later cells see
  the same definitions, and execution continues with the next cell.  A cell
  that fails again while being replayed is dropped from the replay.  After
  ``max_kernel_restarts`` the remaining cells are marked as not run, so the run
  always finishes.
* The whole notebook has a wall-clock budget, ``notebook_timeout``: every cell,
  kernel start, restart and replay counts against it (each cell's timeout is cut
  to what is left). When it runs out, the running cell is stopped and the
  remaining cells are marked as not run with a clear error; the notebook is then
  judged as usual.  Without it, a few slow cells and kernel kills cost
  ``restarts x (their time)``: every crash replays every completed cell.
* A cell that times out but *does* react to the interrupt
  gets a ``CellTimeout`` error and the same kernel carries on.  Replayed are
  the cells that ran to the end, including ones that raised an ordinary
  exception (their partial effects are reproduced); cells that timed out or
  killed the kernel are never replayed.
* Outputs are capped while executing: once a cell has produced more than
  ``max_output_chars`` characters (or the notebook ``max_notebook_output_chars``),
  further output is dropped and one note is added, so the grader process never
  accumulates gigabytes. Every channel counts: streams, displays, results,
  errors, display updates (``DisplayHandle.update``) and widget messages.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import typing as t
from queue import Empty
from time import monotonic

from nbclient.client import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async, run_hook, run_sync
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Float, Int, Unicode

from interp_course.security.inert import terminal_safe
from interp_course.sandbox.kernel_manager import SandboxedKernelManager

__all__ = ["KernelStartFailed", "ResilientExecute"]

_RED = "\x1b[0;31m"
_RESET = "\x1b[0m"


class _KernelFault(Exception):
    """The current kernel is gone (or was killed); raised out of nbclient's cell loop."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind, detail)
        self.kind = kind  # "died" or "timeout"
        self.detail = detail


class KernelStartFailed(RuntimeError):
    """The sandboxed kernel did not come up. Its message is one line: what went wrong and the
    last lines the kernel itself wrote (the cause, e.g. a missing module), for the grader's closing
    lines and for the refusal of a batch whose first kernel cannot start."""

    def __init__(self, error: BaseException, km: t.Any) -> None:
        tail = km.kernel_log_tail(1500) if isinstance(km, SandboxedKernelManager) else ""
        lines = [line.strip() for line in terminal_safe(tail).splitlines() if line.strip()][-3:]
        said = f"; the kernel's last lines: {' | '.join(lines)}" if lines else ""
        super().__init__(f"the sandboxed kernel did not start ({type(error).__name__}: {error}){said}")


def _plain_execution_counts(nb: NotebookNode) -> None:
    """nbclient copies the kernel's execution_count unchecked; a non-integer one (the kernel is
    the student's) would fail nbformat validation and drop the whole submission."""
    def plain(count):
        return count if type(count) is int else None

    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.execution_count = plain(cell.get("execution_count"))
            for out in cell.get("outputs", []):
                if out.get("output_type") == "execute_result":
                    out["execution_count"] = plain(out.get("execution_count"))


class ResilientExecute(Execute):
    """nbgrader ``Execute`` in a sandbox, turning kernel faults into cell errors."""

    interrupt_grace = Float(
        3.0,
        help="Seconds to wait for a timed-out cell to react to the interrupt before the "
        "kernel is killed and replaced.",
    ).tag(config=True)

    max_kernel_restarts = Int(
        3,
        help="Most kernel replacements per notebook; after that the remaining cells are "
        "marked as not run.",
    ).tag(config=True)

    notebook_timeout = Int(
        600,
        help="Wall-clock seconds for the whole notebook, replays and restarts included; when "
        "used up, the running cell is stopped and the rest are marked as not run. 0: no limit.",
    ).tag(config=True)

    max_output_chars = Int(
        100_000,
        help="Per-cell cap on output kept while executing (characters of text; other "
        "outputs counted by their size). -1 disables the cap.",
    ).tag(config=True)

    max_notebook_output_chars = Int(
        5_000_000,
        help="Cap on all of a notebook's outputs together (counted as max_output_chars counts them); "
        "The course's honest outputs are a few hundred kB. -1 disables the cap.",
    ).tag(config=True)

    max_error_chars = Int(
        20_000, help="Cap on the size of a single error output (evalue + traceback)."
    ).tag(config=True)

    timeout_error_name = Unicode("CellTimeout").tag(config=True)
    died_error_name = Unicode("KernelDied").tag(config=True)
    time_limit_error_name = Unicode("NotebookTimeLimit").tag(config=True)

    require_sandbox = Bool(
        True,
        help="Refuse to run if the kernel manager class is not a SandboxedKernelManager.",
    ).tag(config=True)

    _deadline: float | None = None

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
        super().__init__(*args, **kwargs)
        #: one entry per kernel fault of the last preprocess() call:
        #: {"cell_index": int, "ename": "KernelDied" | "CellTimeout", "detail": str}
        self.fault_log: list[dict[str, t.Any]] = []

    # ------------------------------------------------------------------ entry point
    def preprocess(
        self, nb: NotebookNode, resources: t.Any = None, km: t.Any = None
    ) -> tuple[NotebookNode, dict[str, t.Any]]:
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        if (
            self.require_sandbox
            and km is None
            and not issubclass(self.kernel_manager_class, SandboxedKernelManager)
        ):
            raise RuntimeError(
                "ResilientExecute.require_sandbox is set but kernel_manager_class is "
                f"{self.kernel_manager_class.__name__}, not a SandboxedKernelManager"
            )
        try:
            run_sync(self._async_preprocess)()
        except BaseException:
            self._emergency_kill()
            raise
        self.set_widgets_metadata()
        _plain_execution_counts(self.nb)
        return self.nb, self.resources

    # ------------------------------------------------------------------ main loop
    async def _async_preprocess(self) -> None:
        self._replay: list[int] = []
        self._restarts = 0
        self._gave_up: str | None = None
        self._current_msg_id: str | None = None
        self.fault_log: list[dict[str, t.Any]] = []
        self._deadline = monotonic() + self.notebook_timeout if self.notebook_timeout > 0 else None
        try:
            await self._async_start_kernel()
            assert self.kc is not None
            info_msg = await self.async_wait_for_reply(await ensure_async(self.kc.kernel_info()))
            if info_msg is not None and "language_info" in info_msg["content"]:
                self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
            for index, cell in enumerate(self.nb.cells):
                if self._gave_up is None and self._is_executed(cell) and self._out_of_time():
                    self._gave_up = self._time_limit_reason()
                    self.log.error("Giving up on the rest of the notebook: %s", self._gave_up)
                if self._gave_up is not None:
                    if self._is_executed(cell):
                        await self._async_mark_not_run(cell, index)
                    continue
                await self._async_run_cell(cell, index)
        finally:
            await self._async_stop_kernel(now=self.shutdown_kernel == "immediate")
            await run_hook(self.on_notebook_complete, notebook=self.nb)

    # ------------------------------------------------------------------ the notebook's budget
    def _time_left(self) -> float | None:
        return None if self._deadline is None else self._deadline - monotonic()

    def _out_of_time(self) -> bool:
        left = self._time_left()
        return left is not None and left <= 0.5

    def _time_limit_reason(self) -> str:
        return f"the notebook used up its time limit of {self.notebook_timeout} s."

    def _gave_up_ename(self) -> str:
        timed_out = self._gave_up == self._time_limit_reason()
        return self.time_limit_error_name if timed_out else self.died_error_name

    def _get_timeout(self, cell: NotebookNode | None) -> int | None:
        """A cell's own timeout, cut to what is left of the notebook's budget."""
        timeout = super()._get_timeout(cell)
        left = self._time_left()
        if left is None:
            return timeout
        left_s = max(1, math.ceil(left))
        return left_s if timeout is None else min(timeout, left_s)

    def _is_executed(self, cell: NotebookNode) -> bool:
        return (
            cell.cell_type == "code"
            and bool(cell.source.strip())
            and self.skip_cells_with_tag not in cell.metadata.get("tags", [])
        )

    async def _async_run_cell(self, cell: NotebookNode, index: int) -> None:
        self._reset_output_budget()
        self._cell_interrupted = False
        fault: _KernelFault | None = None
        try:
            await self.async_execute_cell(
                cell, index, execution_count=self.code_cells_executed + 1
            )
        except CellExecutionError:
            raise  # allow_errors=False and a normal error: stock behaviour
        except _KernelFault as exc:
            fault = exc
        except DeadKernelError:
            fault = _KernelFault("died")
        except CellTimeoutError as exc:
            # nbclient's own timeouts: no IOPub idle after the reply, or interrupt_on_timeout off
            fault = _KernelFault("timeout", str(exc).splitlines()[0] if str(exc) else "")
        finally:
            self._current_msg_id = None
        if fault is None:
            if self._is_executed(cell) and not self._cell_interrupted:
                self._replay.append(index)
            return
        await self._async_handle_fault(cell, index, fault)

    # ------------------------------------------------------------------ faults
    def _exit_status(self) -> int | None:
        prov = getattr(self.km, "provisioner", None)
        proc = getattr(prov, "process", None)
        if proc is None:
            return None
        try:
            return proc.poll()
        except Exception:  # noqa: BLE001
            return None

    async def _async_handle_fault(
        self, cell: NotebookNode, index: int, fault: _KernelFault
    ) -> None:
        timeout = self._get_timeout(cell)
        if fault.kind == "timeout":
            ename = self.timeout_error_name
            what = (
                f"This cell did not finish within {timeout} s and did not respond to an "
                "interrupt, so its kernel was stopped"
            )
            if self._out_of_time():
                what = (
                    f"The notebook's time limit of {self.notebook_timeout} s ran out during this "
                    "cell, which did not respond to an interrupt, so its kernel was stopped"
                )
        else:
            ename = self.died_error_name
            status = self._exit_status()
            how = ""
            if status is not None and status > 128:
                try:
                    how = f", killed by {signal.Signals(status - 128).name}"
                except ValueError:
                    how = f", exit status {status}"
            elif status is not None:
                how = f", exit status {status}"
            what = (
                "The kernel died while running this cell (e.g. os._exit, a crash, or "
                f"running out of memory{how})"
            )
            if isinstance(self.km, SandboxedKernelManager):
                # the student's kernel wrote this: no escape sequences to the grader's terminal
                tail = terminal_safe(self.km.kernel_log_tail(1500, since_mark=True)).strip()
                if tail:
                    self.log.warning("Kernel output before it died:\n%s", tail)
        stats = self.km.cgroup_stats() if isinstance(self.km, SandboxedKernelManager) else None
        if stats is not None and stats.describe():
            what += ". " + stats.describe()  # e.g. "Your notebook used more than 6 GiB of memory ..."
        self.log.error("Cell %d: %s: %s", index, ename, what)
        self.fault_log.append({"cell_index": index, "ename": ename, "detail": fault.detail})
        await self._async_recover()
        if self._gave_up is None and self._out_of_time():
            self._gave_up = self._time_limit_reason()  # spent on the restart and the replay
        if self._gave_up is None:
            evalue = (
                f"{what}. A fresh kernel was started, the earlier cells were re-run, and "
                "the rest of the notebook was still run."
            )
        else:
            evalue = f"{what}. The rest of the notebook was not run: {self._gave_up}"
        await self._async_record_error(cell, index, ename, evalue)

    async def _async_record_error(
        self, cell: NotebookNode, index: int, ename: str, evalue: str
    ) -> None:
        out = NotebookNode(
            output_type="error",
            ename=ename,
            evalue=evalue,
            traceback=[f"{_RED}{ename}{_RESET}: {evalue}"],
        )
        cell.setdefault("outputs", []).append(out)
        if cell.get("execution_count") is None:
            cell["execution_count"] = self.code_cells_executed or None
        reply = {
            "msg_type": "execute_reply",
            "header": {},
            "parent_header": {},
            "content": {
                "status": "error",
                "ename": ename,
                "evalue": evalue,
                "traceback": list(out.traceback),
            },
        }
        # nbgrader's on_cell_executed sees an output with this ename and adds nothing
        await run_hook(self.on_cell_executed, cell=cell, cell_index=index, execute_reply=reply)
        await self._check_raise_for_error(cell, index, reply)

    async def _async_mark_not_run(self, cell: NotebookNode, index: int) -> None:
        self._reset_output_budget()
        cell.outputs = []
        self.code_cells_executed += 1
        cell["execution_count"] = self.code_cells_executed
        await self._async_record_error(
            cell,
            index,
            self._gave_up_ename(),
            f"This cell was not run: {self._gave_up}",
        )

    async def _async_recover(self) -> None:
        """Replace the kernel and replay the completed cells (dropping ones that fail)."""
        while True:
            if self._out_of_time():
                self._gave_up = self._time_limit_reason()
                self.log.error("Giving up on the rest of the notebook: %s", self._gave_up)
                await self._async_stop_kernel(now=True)
                return
            if self._restarts >= self.max_kernel_restarts:
                self._gave_up = (
                    f"the kernel failed {self._restarts} times in this notebook "
                    f"(limit {self.max_kernel_restarts})."
                )
                self.log.error("Giving up on the rest of the notebook: %s", self._gave_up)
                await self._async_stop_kernel(now=True)
                return
            self._restarts += 1
            try:
                await self._async_fresh_kernel()
            except Exception as exc:  # noqa: BLE001
                self.log.exception("Could not start a replacement kernel")
                self._gave_up = f"no replacement kernel could be started ({exc})."
                await self._async_stop_kernel(now=True)
                return
            bad = await self._async_replay()
            if bad is None:
                return
            self.log.warning(
                "Cell %d failed again while being replayed; it is left out of the replay", bad
            )
            self._replay.remove(bad)

    async def _async_replay(self) -> int | None:
        """Re-run the completed cells silently; return the index of one that kills the kernel."""
        for idx in list(self._replay):
            if self._out_of_time():
                return None  # the caller finds the budget spent and marks the rest not run
            cell = self.nb.cells[idx]
            ok = await self._async_run_silently(cell.source, self._get_timeout(cell))
            if not ok:
                return idx
        return None

    async def _async_run_silently(self, code: str, timeout: int | None) -> bool:
        """Execute code, discarding all output. False if the kernel died or had to be killed."""
        assert self.kc is not None and self.km is not None
        msg_id = await ensure_async(
            self.kc.execute(code, store_history=True, stop_on_error=False, allow_stdin=False)
        )
        drain = asyncio.ensure_future(self._async_drain_iopub(msg_id))
        try:
            deadline = monotonic() + timeout if timeout else None
            while True:
                wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - monotonic()))
                try:
                    msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=wait))
                except Empty:
                    if not await ensure_async(self.km.is_alive()):
                        return False
                    if deadline is not None and monotonic() >= deadline:
                        self.log.warning("Replayed cell timed out; interrupting")
                        if await self._async_interrupt_and_wait(msg_id) is None:
                            return False
                        return True  # interrupted but alive: keep going
                    continue
                if msg["parent_header"].get("msg_id") == msg_id:
                    break
            try:
                await asyncio.wait_for(drain, self.iopub_timeout)
            except (asyncio.TimeoutError, Empty):
                pass
            return True
        finally:
            drain.cancel()

    async def _async_drain_iopub(self, msg_id: str) -> None:
        assert self.kc is not None
        while True:
            msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=None))
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"].get("execution_state") == "idle"
            ):
                return

    async def _async_interrupt_and_wait(self, msg_id: str | None) -> dict[str, t.Any] | None:
        """Interrupt the kernel; return the execute_reply if it comes within the grace time."""
        assert self.km is not None and self.kc is not None
        try:
            await ensure_async(self.km.interrupt_kernel())
        except Exception as exc:  # noqa: BLE001
            self.log.warning("Interrupting the kernel failed: %s", exc)
            return None
        deadline = monotonic() + self.interrupt_grace
        while True:
            remaining = deadline - monotonic()
            if remaining <= 0:
                return None
            try:
                msg = await ensure_async(
                    self.kc.shell_channel.get_msg(timeout=min(remaining, 0.5))
                )
            except Empty:
                if not await ensure_async(self.km.is_alive()):
                    return None
                continue
            if msg_id is None or msg["parent_header"].get("msg_id") == msg_id:
                return msg

    # nbclient hook: called when a cell's execute_reply did not arrive within the timeout
    async def _async_handle_timeout(
        self, timeout: int, cell: NotebookNode | None = None
    ) -> None | dict[str, t.Any]:
        if cell is None:
            return await super()._async_handle_timeout(timeout, cell)
        self.log.error("Cell did not finish within %i s", timeout)
        if self.interrupt_on_timeout:
            reply = await self._async_interrupt_and_wait(self._current_msg_id)
            if reply is not None:
                self._cell_interrupted = True
                evalue = (
                    f"This cell did not finish within {timeout} s and was interrupted. "
                    "The rest of the notebook was still run."
                )
                if self._out_of_time():
                    evalue = (
                        f"The notebook's time limit of {self.notebook_timeout} s ran out during "
                        "this cell, which was interrupted. The rest of the notebook was not run."
                    )
                return {
                    "msg_type": "execute_reply",
                    "header": reply.get("header", {}),
                    "parent_header": reply.get("parent_header", {}),
                    "metadata": {},
                    "content": {
                        "status": "error",
                        "ename": self.timeout_error_name,
                        "evalue": evalue,
                        "traceback": [f"{_RED}{self.timeout_error_name}{_RESET}: {evalue}"],
                    },
                }
        # the fault handler kills and replaces the kernel
        raise _KernelFault("timeout", f"no reply within {timeout} s")

    async def _async_poll_for_reply(  # type: ignore[override]
        self,
        msg_id: str,
        cell: NotebookNode,
        timeout: int | None,
        task_poll_output_msg: asyncio.Future[t.Any],
        task_poll_kernel_alive: asyncio.Future[t.Any],
    ) -> dict[str, t.Any]:
        self._current_msg_id = msg_id
        return await super()._async_poll_for_reply(
            msg_id, cell, timeout, task_poll_output_msg, task_poll_kernel_alive
        )

    # ------------------------------------------------------------------ kernels
    async def _async_start_kernel(self) -> None:
        if self.km is None:
            self.km = self.create_kernel_manager()
        km = self.km  # nbclient drops it when a kernel that failed to start is cleaned up
        try:
            if not km.has_kernel:
                await self.async_start_new_kernel()
            await self.async_start_new_kernel_client()
        except Exception as exc:
            raise KernelStartFailed(exc, km) from exc
        if isinstance(self.km, SandboxedKernelManager):
            self.km.mark_log()

    async def _async_fresh_kernel(self) -> None:
        if self.owns_km:
            await self._async_stop_kernel(now=True)
            await self._async_start_kernel()
        else:
            await self._async_stop_client()
            assert self.km is not None
            await ensure_async(self.km.restart_kernel(now=True))
            await self.async_start_new_kernel_client()
            if isinstance(self.km, SandboxedKernelManager):
                self.km.mark_log()

    async def _async_stop_client(self) -> None:
        kc, self.kc = self.kc, None
        if kc is not None:
            try:
                await ensure_async(kc.stop_channels())
            except Exception as exc:  # noqa: BLE001
                self.log.debug("stop_channels failed: %s", exc)

    async def _async_stop_kernel(self, now: bool) -> None:
        """Shut the kernel down (killing it if ``now``) and release everything."""
        await self._async_stop_client()
        km = self.km
        if km is None or not self.owns_km:
            return
        self.km = None
        try:
            if km.has_kernel:
                await ensure_async(km.shutdown_kernel(now=now))
            else:
                await ensure_async(km.cleanup_resources())
        except Exception:  # noqa: BLE001
            self.log.exception("Error while stopping the kernel; killing it")
            self._kill_process_group(km)
            try:
                await ensure_async(km.cleanup_resources())
            except Exception:  # noqa: BLE001
                pass

    @staticmethod
    def _kill_process_group(km: t.Any) -> None:
        prov = getattr(km, "provisioner", None)
        proc = getattr(prov, "process", None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            try:
                proc.kill()
            except OSError:
                pass
        try:
            proc.wait(timeout=5)
        except Exception:  # noqa: BLE001
            pass

    def _emergency_kill(self) -> None:
        km = self.km
        if km is not None and self.owns_km:
            self._kill_process_group(km)
            try:
                run_sync(self._async_stop_kernel)(now=True)
            except BaseException:  # noqa: BLE001
                pass

    # ------------------------------------------------------------------ output cap
    # Every channel by which a kernel puts data into the notebook counts against the same
    # budgets: stream, display_data, execute_result, error (each error also capped on its own),
    # update_display_data (which rewrites every earlier output with that display id, in any
    # cell: its size counts once per output it rewrites), and comm messages (widget state, which
    # nbclient stores in the notebook's metadata). A cell gets ``max_output_chars``; all cells
    # together ``max_notebook_output_chars`` (a cleared output gives its share back). Past a
    # budget, further output is dropped and one note says so; data nested deeper than
    # ``_MAX_OUTPUT_DEPTH`` counts as over any budget.
    _MAX_OUTPUT_DEPTH = 64
    _MESSAGE_COST = 16  # what any message costs, empty or not: a flood of empty outputs is not free

    def reset_execution_trackers(self) -> None:
        super().reset_execution_trackers()
        self._nb_out_used = 0
        self._out_used = 0
        self._out_truncated = False
        self._out_errors = 0

    def _reset_output_budget(self, refund: bool = False) -> None:
        """A new cell's budget (what the last cell used stays spent); ``refund``: the cell's
        outputs were cleared, so what they used is given back."""
        if not refund:
            self._nb_out_used = getattr(self, "_nb_out_used", 0) + getattr(self, "_out_used", 0)
        self._out_used = 0
        self._out_truncated = False
        self._out_errors = 0

    def _cell_limit(self) -> int:
        """What the running cell may use: its own cap, or what is left of the notebook's."""
        if self.max_notebook_output_chars < 0:
            return self.max_output_chars
        return max(0, min(self.max_output_chars, self.max_notebook_output_chars - getattr(self, "_nb_out_used", 0)))

    @classmethod
    def _data_size(cls, value: t.Any, stop_at: int) -> int:
        """Characters of plain data (strings, bytes, numbers, lists, dicts), counted without
        recursion and stopped once past ``stop_at``; deeper than _MAX_OUTPUT_DEPTH: past it."""
        size, stack = 0, [(value, 0)]
        while stack:
            item, depth = stack.pop()
            if depth > cls._MAX_OUTPUT_DEPTH:
                return stop_at + 1
            if isinstance(item, str):
                size += len(item)
            elif isinstance(item, (bytes, bytearray, memoryview)):
                size += len(item)
            elif isinstance(item, dict):
                size += 2 * len(item)
                for key, sub in item.items():
                    size += len(key) if isinstance(key, str) else 8
                    stack.append((sub, depth + 1))
            elif isinstance(item, (list, tuple)):
                size += 2 * len(item)
                stack.extend((sub, depth + 1) for sub in item)
            else:
                size += 8
            if size > stop_at:
                return stop_at + 1
        return size

    @classmethod
    def _content_size(cls, msg: dict[str, t.Any], stop_at: int = 2**62) -> int:
        """What a kernel message would add to the notebook, in characters (stopped past ``stop_at``)."""
        content = msg.get("content") or {}
        if not isinstance(content, dict):
            return cls._MESSAGE_COST
        msg_type = msg.get("msg_type")
        if msg_type == "stream":
            parts: t.Any = content.get("text", "")
        elif msg_type == "error":
            parts = [content.get("ename"), content.get("evalue"), content.get("traceback")]
        elif str(msg_type).startswith("comm"):
            parts = [content.get("data"), list(msg.get("buffers") or [])]
        else:
            parts = [content.get("data"), content.get("metadata")]
        return cls._MESSAGE_COST + cls._data_size(parts, stop_at)

    def _truncation_note(self) -> str:
        if self.max_notebook_output_chars >= 0 and self._cell_limit() < self.max_output_chars:
            return (
                f"\n... [output truncated: this notebook's outputs reached {self.max_notebook_output_chars} "
                "characters in all; the rest was discarded]\n"
            )
        return (
            f"\n... [output truncated: this cell produced more than {self.max_output_chars} "
            "characters of output; the rest was discarded]\n"
        )

    def _fits(self, size: int) -> bool:
        return not self._out_truncated and self._out_used + size <= self._cell_limit()

    def _over_budget(
        self, outs: list[NotebookNode], msg: dict[str, t.Any], cell_index: int, text: str = ""
    ) -> NotebookNode | None:
        """Stop this cell's output: what fits of ``text``, then one note."""
        if self._out_truncated:
            return None
        self._out_truncated = True
        room = max(0, self._cell_limit() - self._out_used)
        self._out_used = max(self._out_used, self._cell_limit())
        name = "stderr"
        if msg.get("msg_type") == "stream":
            name = str((msg.get("content") or {}).get("name", "stdout"))
        note = {
            "msg_type": "stream",
            "header": {**(msg.get("header") or {}), "msg_type": "stream"},  # nbformat reads the header's type
            "parent_header": msg.get("parent_header", {}),
            "metadata": {},
            "content": {"name": name, "text": text[:room] + self._truncation_note()},
        }
        self.log.warning("Cell %d: output truncated at %d characters", cell_index, self._cell_limit())
        return super().output(outs, note, None, cell_index)

    def process_message(
        self, msg: dict[str, t.Any], cell: NotebookNode, cell_index: int
    ) -> NotebookNode | None:
        """Count what nbclient would store without calling ``output``: display updates (which
        rewrite earlier outputs) and comm messages (widget state)."""
        if self.max_output_chars < 0:
            return super().process_message(msg, cell, cell_index)
        if not hasattr(self, "_out_used"):
            self._reset_output_budget()
        msg_type = msg.get("msg_type", "")
        content = msg.get("content") or {}
        transient = content.get("transient") if isinstance(content, dict) else None
        display_id = transient.get("display_id") if isinstance(transient, dict) else None
        if display_id and msg_type in ("update_display_data", "display_data", "execute_result"):
            targets = sum(len(ix) for ix in self._display_id_map.get(display_id, {}).values())
            if targets:
                limit = max(0, self._cell_limit() - self._out_used)
                size = self._content_size(msg, stop_at=limit) * targets
                if not self._fits(size):
                    if msg_type == "update_display_data":
                        self._over_budget(cell.outputs, msg, cell_index)
                        return None
                    # A new output with that id: shown (if it fits) but rewrites no earlier one.
                    msg = {**msg, "content": {**content, "transient": {}}}
                else:
                    self._out_used += size
        elif msg_type.startswith("comm"):
            size = self._content_size(msg, stop_at=max(0, self._cell_limit() - self._out_used))
            if not self._fits(size):
                if not self._out_truncated:
                    self.log.warning("Cell %d: widget messages dropped (output budget used up)", cell_index)
                    self._over_budget(cell.outputs, msg, cell_index)
                return None
            self._out_used += size
        return super().process_message(msg, cell, cell_index)

    def output(
        self,
        outs: list[NotebookNode],
        msg: dict[str, t.Any],
        display_id: str | None,
        cell_index: int,
    ) -> NotebookNode | None:
        if self.max_output_chars < 0:
            return super().output(outs, msg, display_id, cell_index)
        if not hasattr(self, "_out_used"):
            self._reset_output_budget()
        msg_type = msg["msg_type"]
        if self.clear_before_next_output:
            self._reset_output_budget(refund=True)
        if msg_type == "error":
            content = dict(msg["content"])
            tb = [str(x) for x in list(content.get("traceback") or [])[-50:]]
            evalue = str(content.get("evalue", ""))
            content["ename"] = str(content.get("ename", ""))[:200]
            content["evalue"], content["traceback"] = evalue, tb
            if len(evalue) + sum(len(x) for x in tb) > self.max_error_chars:
                half = self.max_error_chars // 2
                content["evalue"] = evalue[:half] + (" ... [truncated]" if len(evalue) > half else "")
                kept, used = [], 0
                for line in tb:
                    if used + len(line) > half:
                        kept.append(line[: max(0, half - used)] + " ... [truncated]")
                        break
                    kept.append(line)
                    used += len(line)
                content["traceback"] = kept
            msg = {**msg, "content": content}
            size = self._content_size(msg)
            # The cell's first error is always kept (it says why the cell failed); more count.
            if self._out_errors and not self._fits(size):
                return self._over_budget(outs, msg, cell_index)
            self._out_errors += 1
            self._out_used += size
            return super().output(outs, msg, display_id, cell_index)
        if msg_type not in ("stream", "display_data", "execute_result"):
            size = self._content_size(msg, stop_at=max(0, self._cell_limit() - self._out_used))
            if not self._fits(size):
                return self._over_budget(outs, msg, cell_index)
            self._out_used += size
            return super().output(outs, msg, display_id, cell_index)
        if self._out_truncated:
            return None
        size = self._content_size(msg, stop_at=max(0, self._cell_limit() - self._out_used))
        if self._fits(size):
            self._out_used += size
            return super().output(outs, msg, display_id, cell_index)
        # over budget: keep what fits of a stream, then one note
        text = (msg.get("content") or {}).get("text", "") if msg_type == "stream" else ""
        return self._over_budget(outs, msg, cell_index, text if isinstance(text, str) else "")

    def clear_output(
        self, outs: list[NotebookNode], msg: dict[str, t.Any], cell_index: int
    ) -> None:
        super().clear_output(outs, msg, cell_index)
        if not msg["content"].get("wait") and not outs:
            self._reset_output_budget(refund=True)
