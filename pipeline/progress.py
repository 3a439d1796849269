"""Progress output that reads well both in a terminal and in a log file.

Keras draws its progress bar with carriage returns and ANSI colour codes whenever it runs on a
POSIX system, terminal or not, so a redirected log gets every redraw on one line (thousands of
characters per epoch). Off a terminal we ask Keras for its one-line-per-epoch form instead.
"""

from __future__ import annotations

import sys


def verbosity() -> int:
    """Keras's ``verbose``: 1 (a live bar) on a terminal, 2 (one plain line at the end) otherwise."""
    return 1 if sys.stdout.isatty() else 2
