"""Errors a person can act on, and the guard that makes a command line print them as one message.

The plugin raises a :class:`UserError` for input a person can fix: an invalid setting, an unknown model, missing or
malformed data, a missing optional package. Each kind also subclasses the built-in exception it stands for
(``ValueError``, ``FileNotFoundError``, ...), so ``except ValueError`` keeps working for library callers.

Every command line wraps its ``main(argv=None)`` in :func:`main_guard`: a ``UserError`` is printed to stderr as one
line, ``<prog>: error: <message>``, and the process exits with status 2 (argparse's status for usage errors); any
other exception is a bug and keeps its traceback. ``--debug`` (add it to a parser with :func:`add_debug_flag`) or
the environment variable ``RECBOLE_DREAMREC_DEBUG=1`` shows the traceback of user errors too::

    from recbole_dreamrec.errors import add_debug_flag, main_guard

    @main_guard
    def main(argv=None):
        parser = argparse.ArgumentParser()
        add_debug_flag(parser)
        ...
"""

import functools
import os
import sys

DEBUG_FLAG = "--debug"
DEBUG_ENV = "RECBOLE_DREAMREC_DEBUG"
EXIT_USER_ERROR = 2


class UserError(Exception):
    """Base of the errors caused by input a person can fix; command lines print only its message."""


class ConfigError(UserError, ValueError):
    """An invalid setting or argument (a config value, a model name, an unknown user or item id)."""


class DataError(UserError, ValueError):
    """A data file that cannot be used as it is (wrong column types, missing columns, nothing left after
    filtering)."""


class InputNotFoundError(UserError, FileNotFoundError):
    """A dataset, checkpoint, results folder or other input that is not where it was said to be."""


class DownloadError(UserError, ConnectionError):
    """A dataset that had to be downloaded and could not be."""


class MissingDependencyError(UserError, ImportError):
    """An optional package a feature needs is not installed (the message gives the install command)."""


def debug_requested(argv=None):
    """Whether ``--debug`` is among the arguments (``sys.argv[1:]`` by default) or ``RECBOLE_DREAMREC_DEBUG`` is
    set to anything but ``""`` or ``"0"``."""
    args = sys.argv[1:] if argv is None else argv
    return DEBUG_FLAG in args or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def add_debug_flag(parser):
    """Add ``--debug`` to an argparse parser (and return the parser); :func:`main_guard` reads it."""
    parser.add_argument(
        DEBUG_FLAG,
        action="store_true",
        help=f"show the full traceback of input errors too (same as {DEBUG_ENV}=1)",
    )
    return parser


def main_guard(main):
    """Decorate a command line's ``main(argv=None)``: a :class:`UserError` prints one line to stderr and exits with
    status 2, unless debugging is requested (:func:`debug_requested`), which re-raises it with its traceback."""

    @functools.wraps(main)
    def guarded(argv=None):
        try:
            return main(argv)
        except UserError as error:
            if debug_requested(argv):
                raise
            print(f"{os.path.basename(sys.argv[0])}: error: {error}", file=sys.stderr)
            raise SystemExit(EXIT_USER_ERROR) from None

    return guarded
