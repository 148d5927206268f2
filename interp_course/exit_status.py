"""What the course commands exit with, and the one way to refuse.

``python -m interp_course grade`` (and so ``make grade``) exits

- ``GRADED`` (0): every submission was graded (one whose code crashed or timed out, but which
  got a score, counts as graded);
- ``SOME_UNGRADED`` (3): some submissions could not be graded; every other one was graded and
  exported to grades.csv with its feedback, and the closing lines name each one not graded,
  why, and what to do;
- ``REFUSED`` (2): nothing was graded, because the course state is unsafe or broken.

``collect`` answers the same way: 0 every file of the download collected, 3 some not (each named
with the reason), 2 refused (not a zip, an unreadable roster).

A check that must stop grading before it starts raises ``Refusal`` with one sentence saying
what is wrong and what to do; ``cli.main`` prints it as one line on stderr and exits 2.
"""

from __future__ import annotations

GRADED = 0
REFUSED = 2
SOME_UNGRADED = 3


class Refusal(Exception):
    """Refuse to go on: the message says what is wrong and what to do, in one sentence."""
