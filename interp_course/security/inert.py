"""Text from a student's kernel made harmless for the grader's terminal.

A kernel writes what it likes to its stdout/stderr, and the grader logs the tail of that when the
kernel dies. Raw, it reaches the instructor's terminal: OSC 52 writes the clipboard, OSC 0 sets
the window title, CSI moves the cursor and erases lines, ``\\r`` and backspace overwrite what
was printed, so a log can be made to show lines the grader never wrote. ``terminal_safe`` keeps
printable text, ``\\n`` and ``\\t`` and nothing else.
"""

from __future__ import annotations

import logging
import re
import traceback

__all__ = ["terminal_safe", "TerminalSafeFilter"]

_ESC = "\x1b"
# Escape sequences removed whole, so their parameters do not show up as stray text:
_SEQUENCES = re.compile(
    # OSC, DCS, SOS, PM, APC: a string up to BEL or ST (ESC \ or 0x9c); an unterminated one
    # up to the end of its line, so it cannot hide the rest of the log
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|(?=\n)|\Z)"
    # CSI (7- or 8-bit): parameter bytes, intermediate bytes, one final byte
    r"|(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    # other escapes: ESC, intermediates, one final byte (ESC c resets the terminal, ESC ( 0 ...)
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?",
    re.DOTALL,
)
# What is left of the controls, one by one: C0 but \t and \n, DEL, C1; and the Unicode
# bidirectional overrides, which reorder what a terminal or editor shows.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` without escape sequences and control characters, except newline and tab."""
    if not isinstance(text, str):
        text = str(text)
    return _CONTROLS.sub("", _SEQUENCES.sub("", text))


class TerminalSafeFilter(logging.Filter):
    """Make every record of a logger terminal-safe: message, arguments and traceback.

    Belt and braces for kernel-derived text that reaches a log by a path nobody thought of (an
    exception message, nbclient's debug output of kernel messages). Colours added by the
    handler's formatter come after filters and are kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string: log what we can
            message = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = terminal_safe(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = terminal_safe(record.exc_text)
        if record.stack_info:
            record.stack_info = terminal_safe(record.stack_info)
        return True


def one_line(text: object) -> str:
    """``text`` for one line of the instructor's terminal: inert, and without line breaks."""
    return terminal_safe(str(text)).replace("\n", " ").rstrip()
