"""Errors the user can fix: a wrong name or value, a missing or corrupt file, a stage not run yet.

``python -m pipeline`` prints such an error as one line on stderr, naming the problem and what
to do, and exits with status 1; ``--debug`` or ``NMT_DEBUG=1`` shows the traceback instead.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem in the user's input or files, with a message that says what to do."""

    def __str__(self) -> str:
        return " ".join(super().__str__().split())  # one line, whatever the message's layout


class ConfigError(UserError, ValueError):
    """An unknown name, or a setting of the wrong type or out of its range."""


class CorpusError(UserError):
    """A corpus file is missing, cannot be downloaded, has the wrong digest, or a corpus lacks
    a split or a language the run asks for."""


class MismatchError(UserError, ValueError):
    """Two lists that must pair up, line for line, do not: hypotheses and references."""
