"""CLI subcommands: one module each, defining ``add_parser(subparsers)``.

A module sets ``func`` on its parser with ``parser.set_defaults(func=run)``;
``run(args)`` returns the exit code (0 success, 1 failure).  Usage errors exit
with 2 through argparse.
"""
from __future__ import annotations


import json
import math
import os


class UsageError(Exception):
    """Bad input from the command line: printed with the subcommand's usage, then exit code 2."""


def split_names(values, option: str, valid, noun: str = "methods") -> list[str]:
    """Names given as repeated and/or comma-separated options (``--methods a,b --method c``), checked.

    >>> split_names(["reverse,central", "central4"], "--method", ["reverse", "central", "central4"])
    ['reverse', 'central', 'central4']
    """
    names = [n.strip() for v in values or () for n in str(v).split(",") if n.strip()]
    valid = list(valid)
    if values is not None and not names:
        raise UsageError(f"{option} names nothing; valid {noun}: {', '.join(valid)}")
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise UsageError(f"{option}: unknown {', '.join(unknown)}; valid {noun}: {', '.join(valid)}")
    return names


def check_output_file(path, option: str, suffixes: tuple[str, ...] = (".csv",)) -> None:
    """Refuse, before anything runs, an output file that could not be written (results are never lost).

    >>> check_output_file("out.txt", "--csv")
    Traceback (most recent call last):
    ...
    diffkit.commands.UsageError: --csv out.txt: the file name must end in .csv
    """
    if path is None:
        return
    target = os.path.abspath(os.path.expanduser(str(path)))
    if not str(path).endswith(suffixes):
        raise UsageError(f"{option} {path}: the file name must end in {' or '.join(suffixes)}")
    if os.path.isdir(target):
        raise UsageError(f"{option} {path}: {target} is a directory; give a file name such as {target}/results.csv")
    parent = os.path.dirname(target)
    existing = next(p for p in _ancestors(parent) if os.path.exists(p))
    if not os.path.isdir(existing):
        raise UsageError(f"{option} {path}: {existing} is a file, so {parent} cannot be a folder")
    if not os.access(existing, os.W_OK):
        raise UsageError(f"{option} {path}: cannot write in {existing}; choose a folder you may write to")


def _ancestors(path: str):
    while True:
        yield path
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def json_safe(obj):
    """``obj`` with NaN and infinities as None, so that ``json.dumps(allow_nan=False)`` writes valid JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def print_json(obj) -> None:
    print(json.dumps(json_safe(obj), indent=2, allow_nan=False))


