"""``diffkit report``: run the default studies (quick, reusing stored results) and write the report."""
from __future__ import annotations

import shlex
import time


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="run the studies and write reports/index.md, index.html, figures, data",
                       description="Run the default studies (quick mode, reusing results in the store), then write "
                                   "DIR/index.md, DIR/index.html (self-contained), DIR/figures/*.png|svg and "
                                   "DIR/data/*.csv.  The directory is replaced only when the new report is complete.")
    p.add_argument("--out", default="reports", metavar="DIR", help="output directory (default: reports)")
    p.add_argument("--studies", nargs="+", metavar="STUDY",
                   help="built-in study names or .toml files (default: diffkit.report.DEFAULT_STUDIES)")
    p.add_argument("--full", action="store_true", help="run the full study grids instead of quick mode")
    p.add_argument("--store", metavar="PATH", help="results store (default: $DIFFKIT_STORE or .diffkit/results.sqlite)")
    p.add_argument("--no-run", action="store_true", help="only read results already in the store; run nothing")
    p.add_argument("--fresh", action="store_true",
                   help="discard the studies' stored results and run them again (after a study file changed)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=run)


def _command(args) -> str:
    words = ["diffkit", "report", "--out", args.out]
    words += ["--studies", *args.studies] if args.studies else []
    words += ["--full"] if args.full else []
    words += ["--store", args.store] if args.store else []
    words += ["--no-run"] if args.no_run else []
    words += ["--fresh"] if args.fresh else []
    return shlex.join(words)


def run(args) -> int:
    from diffkit.commands import UsageError
    from diffkit.report import build_report, check_out_dir, check_studies
    from diffkit.report.data import EmptyStoreError

    if args.fresh and args.no_run:
        raise UsageError("--fresh discards stored results and --no-run runs nothing: choose one")
    try:  # bad input is reported before any study runs
        check_out_dir(args.out)
        check_studies(args.studies)
    except ValueError as err:
        raise UsageError(str(err)) from None
    start = time.perf_counter()
    try:
        out = build_report(args.out, args.studies, full=args.full, store=args.store, progress=not args.quiet,
                           run=not args.no_run, fresh=args.fresh, command=_command(args))
    except EmptyStoreError as err:
        raise UsageError(str(err)) from None
    print(f"report written to {out}/index.md and index.html in {time.perf_counter() - start:.0f} s")
    return 0
