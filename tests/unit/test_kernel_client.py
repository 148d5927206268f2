"""The sandbox's kernel client: ready as soon as the kernel has answered on both channels."""

from __future__ import annotations

import asyncio
from queue import Empty

import pytest

from interp_course.sandbox import SandboxedKernelManager, _PromptClient


class _Channel:
    """Answers each read with the next of ``script``: a message, or None for silence (Empty, as
    when the timeout passes); silent once the script is done."""

    def __init__(self, *script):
        self.script, self.timeouts = list(script), []

    async def get_msg(self, timeout=None):
        self.timeouts.append(timeout)
        message = self.script.pop(0) if self.script else None
        if message is None:
            raise Empty
        return message


class _Client(_PromptClient):
    shell_channel = property(lambda self: self._shell)
    iopub_channel = property(lambda self: self._iopub)

    def __init__(self, shell: _Channel, iopub: _Channel, alive: bool = True):
        super().__init__()
        self._shell, self._iopub, self._alive, self.requests = shell, iopub, alive, 0

    def kernel_info(self):
        self.requests += 1

    async def _async_is_alive(self):
        return self._alive


REPLY = {"msg_type": "kernel_info_reply", "content": {"protocol_version": "5.3"}}
STATUS = {"msg_type": "status", "content": {"execution_state": "busy"}}


def test_the_kernels_client_is_the_prompt_one():
    assert isinstance(SandboxedKernelManager().client(), _PromptClient)


def test_ready_once_the_kernel_has_answered_without_waiting_for_iopub_to_fall_silent():
    iopub = _Channel(STATUS, {"msg_type": "status", "content": {"execution_state": "idle"}})
    client = _Client(_Channel(REPLY), iopub)
    asyncio.run(client.wait_for_ready(timeout=10))
    # jupyter_client's own client reads IOPub until 0.2 s pass with no message: three reads here.
    assert iopub.timeouts == [0.2]
    assert client.requests == 1


def test_asks_again_until_iopub_is_connected():
    # The first reply comes before the IOPub socket is subscribed: no message there yet.
    iopub = _Channel(None, STATUS)
    client = _Client(_Channel(REPLY, REPLY), iopub)
    asyncio.run(client.wait_for_ready(timeout=10))
    assert client.requests == 2
    assert iopub.timeouts == [0.2, 0.2]


def test_a_kernel_that_died_before_answering_is_an_error():
    client = _Client(_Channel(), _Channel(), alive=False)
    with pytest.raises(RuntimeError, match="died before replying"):
        asyncio.run(client.wait_for_ready(timeout=10))
