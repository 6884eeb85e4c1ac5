"""The ``diffkit`` command.  Exit codes: 0 success, 1 failure, 2 bad usage."""
from __future__ import annotations

import argparse
import importlib
import sys

# Each name is a module under diffkit.commands; a module that is not there yet is skipped.
COMMANDS = ("demo", "methods", "gradient", "study", "report", "sweep", "bench", "stability", "primitives")


class UsageError(Exception):
    """Bad input from the command line: printed, then exit code 2."""


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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as err:
        parser.error(str(err))  # exits 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001  (the CLI reports, it does not crash)
        print(f"diffkit {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
