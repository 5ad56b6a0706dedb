"""The ``diffmst`` command.

Each sub-command is one ``_add_<name>(subparsers)`` function that declares its arguments
and sets ``func`` (a handler in the same module that reads the arguments, calls the
library and prints); :data:`COMMANDS` lists them in help order. Options several commands
share are declared once in :mod:`.common`. User errors
(:class:`~diffmst.errors.DiffmstError`) print ``diffmst: error: ...`` and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from ..errors import DiffmstError
from .common import EXIT_USAGE
from .data import _add_data
from .mixing import _add_analyze, _add_baseline, _add_mix, _add_optimize, _add_predict
from .render import _add_demo, _add_params, _add_render
from .train import _add_train

# ----------------------------------------------------------------------------- main

COMMANDS: list[Callable] = [_add_mix, _add_render, _add_params, _add_demo, _add_data, _add_optimize, _add_predict, _add_analyze, _add_baseline,
                               _add_train]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="diffmst", description="Mix raw tracks in the style of a reference "
                                     "song with a differentiable mixing console.")
    parser.add_argument("--version", action="version", version=f"diffmst {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except DiffmstError as e:
        print(f"diffmst: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `diffmst params -t tracks | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return _interrupted()
    except OSError as e:  # the system refused: a full disk, a permission, stdout gone
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"diffmst: error: {where}{e.strerror or e}", file=sys.stderr)
        _silence_stdout()
        return EXIT_USAGE
    except SystemError as e:
        # Ctrl-C inside a numba kernel surfaces as "SystemError: CPUDispatcher(...) returned
        # a result with an exception set", the KeyboardInterrupt chained to it
        if isinstance(e.__cause__ or e.__context__, KeyboardInterrupt):
            return _interrupted()
        raise
    return 0


def _silence_stdout() -> None:
    """After stdout failed (`> /dev/full`), send what is left of it nowhere, so that the
    interpreter's last flush cannot print a second error."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _interrupted() -> int:
    print("diffmst: interrupted (nothing half-written is left behind)", file=sys.stderr)
    return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
