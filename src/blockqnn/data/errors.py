"""The one exception the data package raises for bad input."""

from __future__ import annotations

from blockqnn.errors import UserError


class DatasetError(ValueError, UserError):
    """A dataset spec, file, archive or option is unusable.

    The message names the spec or file and says what is wrong with it.
    """
