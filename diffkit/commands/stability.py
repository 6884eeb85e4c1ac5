"""``diffkit stability``: the stability study (studies/stability.toml) without the store: table and summary."""
from __future__ import annotations

import numpy as np
import pandas as pd

from diffkit.commands import UsageError, split_names, check_output_file

LOST = (3, 8, 15)  # digits lost: 3 is the stable variants' 1e-13 promise, 15 leaves at most one digit


def add_parser(sub) -> None:
    p = sub.add_parser("stability", help="stable versus naive primitives against mpmath from -1000 to 1000")
    p.add_argument("--csv", metavar="FILE", help="write the tidy table (one row per case, variant, method, x, "
                                                 "quantity) to FILE")
    p.add_argument("--summary-csv", metavar="FILE", help="write the first-failure summary to FILE")
    p.add_argument("--quick", action="store_true", help="the study's [quick] grid and methods")
    p.add_argument("--cases", "--case", dest="cases", nargs="+", metavar="CASE",
                   help="only these cases (default: all; space- or comma-separated)")
    p.add_argument("--methods", "--method", dest="methods", nargs="+", metavar="METHOD",
                   help="override the study's methods (space- or comma-separated)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from tqdm.auto import tqdm

    from diffkit.stability import CASES, first_failures, stability_sweep
    from diffkit.studies.spec import load_study, registered_methods

    check_output_file(args.csv, "--csv")
    check_output_file(args.summary_csv, "--summary-csv")
    study = load_study("stability")
    options = dict((study.quick() if args.quick else study).sweep["options"])
    cases = split_names(args.cases, "--cases", CASES, "cases") or list(options.pop("cases", None) or CASES)
    if args.methods is not None:
        available = [m.name for m in registered_methods().values() if m.available]
        options["methods"] = split_names(args.methods, "--methods", available)
    parts = []
    for case in tqdm(cases, desc="stability", unit="case", delay=1, disable=args.quiet, leave=False):
        parts.append(stability_sweep(cases=[case], **options))  # one case at a time: the bar moves
    df = pd.concat(parts, ignore_index=True)
    df.attrs["skipped"] = parts[0].attrs.get("skipped", [])
    if df.empty:
        raise UsageError(f"no method of {options.get('methods')} is available here; see `diffkit methods`")
    summary = first_failures(df, LOST)
    if args.csv:
        df.to_csv(args.csv, index=False)
    if args.summary_csv:
        summary.to_csv(args.summary_csv, index=False)
    print(_table(df, summary))
    if df.attrs.get("skipped"):
        print(f"\nskipped (not registered here): {', '.join(df.attrs['skipped'])}")
    return 0


def _table(df: pd.DataFrame, summary: pd.DataFrame) -> str:
    """Per case x variant x method x quantity: worst in-domain error, non-finite count, first failures."""
    worst = (df[df.in_domain].groupby(["case", "variant", "method", "quantity"], sort=False)
             .rel_error.max().rename("worst_rel_in_domain"))
    nonfinite = (~df.finite).groupby([df.case, df.variant, df.method, df.quantity], sort=False).sum().rename("n_nonfinite")
    side = summary.pivot_table(index=["case", "variant", "method", "quantity"], columns="side",
                               values=[f"x_lost_{LOST[0]}", "x_nonfinite"], aggfunc="first", dropna=False)
    side.columns = [f"{a}_{b[:3]}" for a, b in side.columns]
    table = pd.concat([worst, nonfinite], axis=1).join(side)
    with pd.option_context("display.width", 200, "display.max_rows", 1000, "display.float_format",
                           lambda v: "-" if np.isnan(v) else f"{v:.4g}"):
        return (f"{len(df)} rows, {df.x.nunique()} inputs in [{df.x.min():g}, {df.x.max():g}]; "
                f"x_lost_{LOST[0]}: first input (outward from 0) where more than {LOST[0]} digits are lost\n"
                + table.to_string())
