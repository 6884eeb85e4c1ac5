"""CLI subcommands: one module each, defining ``add_parser(subparsers)``.

A module sets ``func`` on its parser with ``parser.set_defaults(func=run)``;
``run(args)`` returns the exit code (0 success, 1 failure).  Usage errors exit
with 2 through argparse.
"""
