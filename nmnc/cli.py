"""The one command-line convention, shared by ``nmnc``, ``brain_benchmarks`` and ``model_zoo``.

- Commands with several jobs use argparse subcommands (``python -m nmnc.analyze alignment ...``).
- ``--set KEY=VALUE`` is repeatable and accumulates (``--set P=2 --set k=4`` keeps both; later
  pairs win); keys are checked against the command's config and unknown ones are errors.
- ``--out DIR`` is always a folder; the files inside have fixed names listed in each ``--help``.
- ``--data-root DIR``, ``--quiet`` and ``--print-config`` (the resolved configuration as JSON on
  stdout, without doing any work) mean the same everywhere; ``--list`` shows the names a command
  accepts.
- A command parses flags, builds a frozen config, calls one plain function and prints; errors a
  user can cause are one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .errors import NmncError, run_cli


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one-line NmncErrors (exit code 2, no usage block)."""

    def error(self, message: str):
        raise NmncError(f"{message}; see '{self.prog} --help'")


def parser(
    prog: str,
    description: str,
    *,
    out: str | None = None,
    sets: str | None = None,
    data_root: bool = True,
    print_config: bool = True,
    quiet: bool = True,
    listing: str | None = None,
    parent: argparse._SubParsersAction | None = None,
    name: str | None = None,
) -> argparse.ArgumentParser:
    """A parser (or subcommand parser) with the shared flags this command takes.

    ``out`` is the help text of ``--out DIR`` (omit for commands that write nothing); ``sets``
    the help text of ``--set``; ``listing`` the help text of ``--list``.
    """
    kw = dict(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    if parent is not None:
        p = parent.add_parser(name, help=description.split("\n")[0], **kw)
    else:
        p = _Parser(prog=prog, **kw)
    if out is not None:
        p.add_argument("--out", metavar="DIR", help=out)
    if sets is not None:
        p.add_argument(
            "--set",
            dest="sets",
            nargs="+",
            action="extend",
            default=[],
            metavar="KEY=VALUE",
            help=f"{sets} (repeatable; later pairs win)",
        )
    if data_root:
        p.add_argument(
            "--data-root",
            metavar="DIR",
            help="folder holding the datasets (default: $NMNC_DATA_ROOT, else ~/.cache/nmnc/data)",
        )
    if quiet:
        p.add_argument("--quiet", action="store_true", help="no progress bars or tables on stderr")
    if print_config:
        p.add_argument(
            "--print-config",
            action="store_true",
            help="print the resolved configuration as JSON and exit without doing any work",
        )
    if listing is not None:
        p.add_argument("--list", action="store_true", help=listing)
    return p


def subcommands(p: argparse.ArgumentParser) -> argparse._SubParsersAction:
    """The subcommand table of a multi-job command (``dest='command'``, required)."""
    return p.add_subparsers(dest="command", required=True, metavar="COMMAND")


def require_out(args: argparse.Namespace, what: str) -> str:
    """``--out`` is required for commands that write; a one-line error names what goes there."""
    from .errors import NmncError

    if not getattr(args, "out", None):
        raise NmncError(f"--out DIR is required: the folder for {what}")
    return out_dir(args.out, what)


def out_dir(path: str, what: str, flag: str = "--out") -> str:
    """An output folder, checked before any work: one line when it names an existing file or a
    place this process cannot write (read-only, no permission, a file on the way)."""
    from pathlib import Path

    p = Path(path)
    try:
        exists = p.exists()
    except OSError as err:  # a folder on the way that this user may not enter
        raise NmncError(f"{flag} {path} cannot be reached ({err.strerror}); give another folder")
    if exists and not p.is_dir():
        raise NmncError(
            f"{flag} {path} is an existing file; {flag} takes a folder (for {what}); "
            "give a folder path"
        )
    writable(p, flag, what)
    return path


def writable(folder, flag: str = "--out", what: str = "the output") -> None:
    """A one-line error unless ``folder`` (existing or not) can be created and written: probed
    with an empty temporary folder in its nearest existing ancestor, which is removed again."""
    import os
    import tempfile
    from pathlib import Path

    folder = Path(folder).absolute()
    base = folder
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise NmncError(
            f"{flag} {folder} cannot be created: {base} is a file, not a folder; "
            f"give a folder path for {what}"
        )
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".nmnc-write-check-", dir=base))
    except OSError as err:
        raise NmncError(
            f"{flag} {folder} cannot be written ({err.strerror} in {base}); "
            f"give a folder you can write for {what}"
        ) from None


def results_file(path: str) -> str:
    """A results table given as its CSV file or as the folder that holds ``results.csv``."""
    from pathlib import Path

    return str(Path(path) / "results.csv") if Path(path).is_dir() else path


def apply_sets(cfg, sets: list[str] | dict, kind: str, flags: dict[str, str] | None = None):
    """``cfg`` (a frozen config) with the ``--set`` pairs applied and checked.

    ``flags`` maps config fields that have their own flag to that flag (``{"out": "--out"}``):
    such a field cannot be set with ``--set``. Unknown keys and values of the wrong type are
    one-line errors naming the closest known key.
    """
    import dataclasses

    from ._registry import apply_overrides
    from .config import parse_sets
    from .errors import NmncError, UnknownNameError

    pairs = parse_sets(sets)
    flags = flags or {}
    keys = [f.name for f in dataclasses.fields(cfg) if f.name not in flags]
    for key in pairs:
        field_name = key.split(".")[0]
        if field_name in flags:
            raise NmncError(f"{kind} '{key}' is given with {flags[field_name]}, not --set")
        if field_name not in keys:
            if not keys:
                raise NmncError(f"this command takes no --set settings (got '{key}')")
            raise UnknownNameError(kind, key, keys)
    return apply_overrides(cfg, pairs, kind)


def script_settings(
    cls, argv, prog: str, doc: str, out_file: str, kind: str, sets: str | None = None
):
    """A benchmark script's flags (``--set``, ``--data-root``, ``--out DIR``, ``--print-config``)
    parsed into its settings dataclass ``cls`` (with ``data_root`` and ``out`` fields), ``--out``
    checked before any work; returns (settings, parsed flags)."""
    import dataclasses

    keys = [f.name for f in dataclasses.fields(cls) if f.name not in ("data_root", "out")]
    p = parser(
        prog,
        doc,
        out=f"folder for {out_file}",
        sets=sets or f"setting: {', '.join(keys)}",
        quiet=False,
    )
    args = p.parse_args(argv)
    flags = {"data_root": "--data-root", "out": "--out"}
    cfg = apply_sets(cls(data_root=args.data_root, out=args.out), args.sets, kind, flags)
    if cfg.out:
        out_dir(cfg.out, out_file)
    return cfg, args


def print_config(cfg) -> int:
    """Print a config dataclass as JSON on stdout (``--print-config``); returns exit code 0."""
    from .config import to_json

    print(to_json(cfg))
    return 0


def entry(main: Callable, prog: str) -> None:
    """``if __name__ == '__main__': entry(main, 'nmnc.train')``: one-line errors, exit codes."""
    sys.exit(run_cli(main, prog=prog))
