"""Printing text that came from students' files (names, nbgrader's log of their notebooks).

A file name or a notebook's output can hold escape sequences that rewrite what the instructor's
terminal shows. ``printable`` drops them and every control character but tab. It is the small
local twin of ``interp_course.inert.terminal_safe`` (added on another branch); use that one
once both are merged.
"""

from __future__ import annotations

import re

# ESC-introduced sequences whole (CSI, OSC up to its terminator, two-byte escapes), then any
# remaining C0/C1 control, DEL, and the Unicode bidirectional overrides.
_SEQUENCES = re.compile(r"\x1b\[[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?|\x1b\].*?(?:\x07|\x1b\\|$)|\x1b.?")
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """``text`` on one line, without escape sequences or control characters (tab kept)."""
    return _CONTROLS.sub("", _SEQUENCES.sub("", str(text)))
