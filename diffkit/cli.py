"""The ``diffkit`` command.  Exit codes: 0 success, 1 failure, 2 bad usage."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .commands import UsageError, check_output_file, json_safe, print_json, split_names  # noqa: F401  (public here)

# Each name is a module under diffkit.commands; a module that is not there yet is skipped.
COMMANDS = ("demo", "methods", "gradient", "study", "report", "sweep", "bench", "stability", "primitives", "graph")


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
