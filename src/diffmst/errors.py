"""Errors a user can cause. The CLI prints them as ``diffmst: error: ...`` (exit 2)."""


class DiffmstError(Exception):
    """Bad input or a refused action; the message names the file and the problem."""
