"""The ``diffkit`` command.  Exit codes: 0 success, 1 failure, 2 bad usage."""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys

# Each name is a module under diffkit.commands; a module that is not there yet is skipped.
COMMANDS = ("demo", "methods", "gradient", "study", "report", "sweep", "bench", "stability", "primitives", "graph")


class UsageError(Exception):
    """Bad input from the command line: printed with the subcommand's usage, then exit code 2."""


def _tag_parsers(parser: argparse.ArgumentParser) -> None:
    """Give every (sub)parser's namespace a ``_parser``: the one whose usage a UsageError prints."""
    parser.set_defaults(_parser=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _tag_parsers(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffkit", description=__doc__.splitlines()[0].strip('"'))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"diffkit.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"diffkit.commands.{name}":
                continue
            raise
        module.add_parser(sub)
    _tag_parsers(parser)
    return parser


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
    diffkit.cli.UsageError: --csv out.txt: the file name must end in .csv
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


def _usage_errors() -> tuple:
    """Exceptions that mean bad input (a malformed study file): exit 2, not 1."""
    from diffkit.studies.spec import StudyError
    return (StudyError,)


def _known_failures() -> tuple:
    """Failures whose message says all (a store in the way): printed without the exception's type name."""
    from diffkit.studies.store import StoreError
    return (StoreError,)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    where = f"diffkit {args.command}" + (f" {args.action}" if getattr(args, "action", None) else "")
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at interpreter exit
        return code
    except UsageError as err:
        getattr(args, "_parser", parser).error(str(err))  # prints the subcommand's usage, exits 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `diffkit study list | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout at exit
        return 0
    except _usage_errors() as err:
        print(f"{where}: error: {err}", file=sys.stderr)
        return 2
    except _known_failures() as err:
        print(f"{where}: error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001  (the CLI reports, it does not crash)
        print(f"{where}: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
