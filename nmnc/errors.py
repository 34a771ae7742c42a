"""Errors a user can cause. Command-line entry points turn them into one-line messages."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable


class NmncError(Exception):
    """A problem with the user's input or data; printed as one line, exit code 2."""

    exit_code = 2


class UnknownNameError(NmncError, KeyError):
    """A name that is not in a registry (model, rule, dataset, setting)."""

    def __init__(self, kind: str, name: str, choices: Iterable[str], fix: str = ""):
        choices = sorted(choices)
        close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        msg = f"unknown {kind} '{name}'{hint}; choose from: {', '.join(choices)}"
        if fix:
            msg += f"; {fix}"
        self.message = msg
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class DataError(NmncError):
    """Missing or broken data: says which dataset, where we looked and how to provide it."""


class CheckpointError(NmncError):
    """A checkpoint that is missing, truncated or not written by nmnc."""


class WriteError(NmncError):
    """A file could not be written (no space, no permission); the old file is unchanged."""


class TrainingDiverged(NmncError):
    """The loss became non-finite; the last good checkpoint is kept."""

    exit_code = 1


def run_cli(main, argv=None, prog: str = "nmnc") -> int:
    """Call ``main(argv)``; print an NmncError as one line and return its exit code."""
    try:
        return main(argv) or 0
    except NmncError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
