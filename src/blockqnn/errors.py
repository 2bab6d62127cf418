"""The mark of an error the user can fix (bad input, a missing or foreign file, a setting
that cannot work here), as opposed to a bug.

Each module's own error class also derives from :class:`UserError`, so the command line
reports any of them as one line and exit status 2 while every other exception keeps its
traceback. Pure Python: never imports torch.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of the errors whose message tells the user what to fix."""
