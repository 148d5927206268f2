"""Every channel by which a kernel puts data into the notebook is capped (issue 28, row 8).

Real sandboxed kernels (``ResilientExecute``, as tests/test_sandbox_execute.py runs them): a
display handle's ``update()`` rewrote earlier outputs without passing the output cap (a 60 MB
autograded notebook and feedback page); here it, widget messages, errors and many cells together
stay within the caps, and what the honest cells print is kept.
"""

from __future__ import annotations

import json

import nbformat

from test_sandbox_execute import box, needs_bwrap, run_nb, text  # noqa: F401 - box is a fixture

CAP = 100_000


def size(nb) -> int:
    return len(nbformat.writes(nb))


@needs_bwrap
def test_display_updates_widgets_and_errors_are_capped(box):
    nb, _ = run_nb(box, [
        # One handle, then one huge update of it from a later cell.
        "from IPython.display import display\nh = display('small', display_id=True)",
        "print('before the update')\nh.update('u' * 5_000_000)",
        # Many small handles (within the cell's budget), then each updated with 90k.
        "hs = [display(str(i), display_id=True) for i in range(300)]",
        "for x in hs:\n    x.update('v' * 90_000)",
        # Widget state: nbclient keeps it in the notebook's metadata.
        "from ipykernel.comm import Comm\n"
        "for i in range(20):\n"
        "    Comm(target_name='jupyter.widget', data={'state': {'_model_name': 'M', 'v': 'w' * 1_000_000}})",
        # A raw flood of error messages on the kernel's own channel.
        "ip = get_ipython()\n"
        "for i in range(200):\n"
        "    ip.kernel.session.send(ip.kernel.iopub_socket, 'error',\n"
        "        {'ename': 'E', 'evalue': 'e' * 19_000, 'traceback': []}, parent=ip.kernel.get_parent())",
        "print('still running')",
    ], executor={"max_output_chars": CAP})
    assert text(nb.cells[1]).startswith("before the update\n\n... [output truncated")
    assert size(nb) < 7 * CAP + 200_000, f"{size(nb):,} bytes"
    assert len(json.dumps(nb.cells[0].outputs)) < CAP + 1000  # the handle kept what it showed
    assert any("output truncated" in text(cell) for cell in nb.cells[1:6])
    assert len(json.dumps(nb.metadata.get("widgets", {}))) < CAP + 1000
    assert text(nb.cells[6]) == "still running\n"


@needs_bwrap
def test_the_notebook_has_a_cap_of_its_own(box):
    cells = [f"print('{i}' * 90_000)" for i in range(8)] + ["print('last')"]
    nb, _ = run_nb(box, cells, executor={"max_output_chars": CAP, "max_notebook_output_chars": 300_000})
    assert size(nb) < 300_000 + 20_000
    assert "notebook's outputs reached 300000 characters" in text(nb.cells[3])
    # Past it, each cell shows only the note (its own output is not kept).
    assert all(text(cell).strip().startswith("... [output truncated: this notebook's") for cell in nb.cells[4:])
    assert text(nb.cells[0]) == "0" * 90_000 + "\n"


@needs_bwrap
def test_clearing_gives_the_budget_back_and_deep_data_counts_as_too_much(box):
    nb, _ = run_nb(box, [
        "from IPython.display import clear_output\n"
        "for i in range(30):\n"
        "    clear_output()\n"
        "    print(str(i % 10) * 80_000)",
        "from IPython.display import display\n"
        "deep = 0\n"
        "for _ in range(200):\n"
        "    deep = [deep]\n"
        "display({'application/json': deep}, raw=True)\nprint('after')",
    ], executor={"max_output_chars": CAP, "max_notebook_output_chars": 200_000})
    assert text(nb.cells[0]) == "9" * 80_000 + "\n"  # an animation's last frame is kept
    assert "output truncated" in text(nb.cells[1])
    assert not [o for o in nb.cells[1].outputs if o.output_type == "display_data"]
