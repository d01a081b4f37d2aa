"""Errors about the user's input: the command line prints them as one line (exit code 2), without a traceback.

Only errors raised on purpose, whose message names the bad input and says what to do, belong here. Anything
else (a bug, an out-of-memory error, a failure inside a dependency) keeps its traceback, so its cause stays
visible. Each class also derives from the built-in type a caller would expect (ValueError, FileNotFoundError,
...), so library users can keep catching those.
"""

from __future__ import annotations


class UsageError(Exception):
    """A bad input (flag, config value, file, folder) that the user can fix; the message says how."""


class InputError(UsageError, ValueError):
    """A value or file content is invalid."""


class InputNotFoundError(UsageError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class OutputPathError(UsageError, FileExistsError):
    """An output path cannot be used (it holds something else, or is not writable)."""


class UnsafeModelError(UsageError, PermissionError):
    """A saved model folder asks for something poolattn does not do without the caller's explicit consent."""
