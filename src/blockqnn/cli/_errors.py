"""The command line's user-error class (its own module so every subcommand can import it)."""

from __future__ import annotations

from blockqnn.errors import UserError


class UsageError(ValueError, UserError):
    """A problem with the user's input: printed on stderr, exit status 2.

    Raise it (or a library's user-error class the entry point knows) for anything the user
    can fix; never for a bug, which must keep its traceback.
    """
