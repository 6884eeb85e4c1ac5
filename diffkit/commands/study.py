"""``diffkit study list | run FILE | show FILE``: declarative, resumable studies (format: studies/README.md)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from diffkit.commands import UsageError, check_output_file
from diffkit.studies import (StudyError, builtin_studies, default_store_path, export, fit_cost_models,
                             load_study, results, run_study, studies_dir)
from diffkit.studies import env as _env
from diffkit.studies.store import Store


def add_parser(sub) -> None:
    p = sub.add_parser("study", help="list, run and show studies",
                       description="Studies: which method, at what accuracy, at what cost, as P grows. Results go "
                                   "to an SQLite store (--store, or $DIFFKIT_STORE, default .diffkit/results.sqlite).")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    ls = actions.add_parser("list", help="the built-in studies and what the store holds",
                            description=f"List the built-in studies (files in {studies_dir()}) and stored results.")
    ls.set_defaults(func=run_list)
    run = actions.add_parser("run", help="run a study's missing cells",
                             description="Run a study (a built-in name or a .toml path). Completed cells are kept: "
                                         "a rerun (also after kill -9) runs only what is missing.")
    show = actions.add_parser("show", help="print a study's stored results",
                              description="Print a study's stored results, one line per cell, and the fitted cost "
                                          "models of a gradient study.")
    for q, func in ((run, run_run), (show, run_show)):
        q.add_argument("file", metavar="FILE", help="study name (see `diffkit study list`) or path to a .toml file")
        q.add_argument("--quick", action="store_true", help="the study's [quick] variant (stored apart)")
        q.add_argument("--store", metavar="PATH", help="results store (default $DIFFKIT_STORE or "
                                                       ".diffkit/results.sqlite)")
        q.add_argument("--csv", metavar="OUT", help="also export the results to OUT (.csv, or .parquet with pyarrow)")
        q.set_defaults(func=func)
    run.add_argument("--fresh", action="store_true", help="discard this study's stored results first")
    run.add_argument("--max-p", type=int, metavar="N", help="leave out cells whose size exceeds N")
    run.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    run.add_argument("--workers", type=int, metavar="N", help="run the cells on a Dask LocalCluster of N worker "
                                                              "processes (needs diffkit[distributed])")
    run.add_argument("--scheduler", metavar="ADDRESS", help="run the cells on a running Dask cluster, e.g. "
                                                            "tcp://HOST:8786 (workers need this diffkit)")


def _study(name):
    try:
        return load_study(name)
    except StudyError as err:
        raise UsageError(str(err)) from None


def run_list(args) -> int:
    for name in builtin_studies():
        study = load_study(name)
        print(f"{name:<12} {study.kind:<10} {study.count_cells():>4} cells  {study.description}")
    path = default_store_path()
    if path.exists():
        print(f"\nstore {path}:")
        for key, info in Store(path).studies().items():
            counts = ", ".join(f"{n} {s}" for s, n in sorted(info["statuses"].items()))
            print(f"  {key:<18} {counts or 'no cells'}  (hash {info['hash']})")
    return 0


def _argv(args) -> list[str]:
    argv = ["study", "run", args.file]
    argv += ["--fresh"] * args.fresh + ["--quick"] * args.quick + ["--quiet"] * args.quiet
    argv += ["--max-p", str(args.max_p)] if args.max_p is not None else []
    argv += ["--store", args.store] if args.store else []
    argv += ["--workers", str(args.workers)] if args.workers is not None else []
    argv += ["--scheduler", args.scheduler] if args.scheduler else []
    return argv + (["--csv", args.csv] if args.csv else [])


def _check_csv(path) -> None:
    check_output_file(path, "--csv", (".csv", ".parquet"))
    if path and str(path).endswith(".parquet"):
        import importlib.util
        if importlib.util.find_spec("pyarrow") is None:
            raise UsageError(f"--csv {path}: writing Parquet needs pyarrow (pip install pyarrow); or give a .csv name")


def run_run(args) -> int:
    _check_csv(args.csv)
    study = _study(args.file)
    if args.max_p is not None and args.max_p < 1:
        raise UsageError(f"--max-p must be a positive parameter count; got {args.max_p}")
    if args.workers is not None or args.scheduler is not None:
        from diffkit.studies.distributed import ClusterError, check_cluster_options
        try:
            check_cluster_options(args.workers, args.scheduler)
        except (ValueError, ClusterError) as err:
            raise UsageError(str(err)) from None
    if _env.needs_subprocess(study.blas_threads):
        # No threadpoolctl: BLAS threads can only be fixed before numpy loads, so run again in a child process.
        return subprocess.call([sys.executable, "-m", "diffkit", *_argv(args)],
                               env=_env.subprocess_env(study.blas_threads))
    df = run_study(study, store=args.store, fresh=args.fresh, quick=args.quick, max_p=args.max_p,
                   quiet=args.quiet, workers=args.workers, scheduler=args.scheduler)
    if args.csv:
        export(df, args.csv)
    if not args.quiet:
        _summary(df, study.kind)
    return 0


def run_show(args) -> int:
    _check_csv(args.csv)
    study = _study(args.file)
    df = results(study, store=args.store, quick=True if args.quick else None)
    if df.empty:
        print(f"no results for study {study.name!r} in {args.store or default_store_path()}; run "
              f"`diffkit study run {args.file}{' --quick' if args.quick else ''}` first", file=sys.stderr)
        return 1
    if args.csv:
        export(df, args.csv)
    if study.kind == "gradient":
        for _, r in df.iterrows():
            print(f"{r['cell_id']:<70} {r['status']:<8} " + _cell_numbers(r) + f"  on {_worker(r)}")
    _summary(df, study.kind)
    _workers(df)
    return 0


def _worker(r) -> str:
    """Where a cell ran: "serial", or the Dask worker's address and its host (stores before this: "-")."""
    worker = r.get("worker")
    if not isinstance(worker, str):
        return "-"
    host = r.get("host")
    return f"{worker} (host {host})" if isinstance(host, str) and worker != "serial" else worker


def _workers(df) -> None:
    if "worker" in df and df["worker"].notna().any():
        counts = df.drop_duplicates("cell_id").apply(_worker, axis=1).value_counts()
        print("computed on: " + ", ".join(f"{w}: {n} cells" for w, n in counts.items()))


def _cell_numbers(r) -> str:
    if r["status"] != "ok":
        return str(r["reason"])[:100]
    digits = "" if r["digits"] is None or np.isnan(r["digits"]) else f"{r['digits']:5.1f} digits  "
    return f"{digits}{r['wall_median_s'] * 1e3:10.3f} ms  grad/forward {r['grad_over_forward']:8.1f}"


def _summary(df, kind: str) -> None:
    counts = df.groupby("status").size().to_dict() if "status" in df else {}
    print("cells: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if kind != "gradient" or df.empty:
        return
    fits = fit_cost_models(df).set_index(["method", "group"])
    for group, in_group in df.groupby("group", sort=False):
        print(f"\n{group}")
        print(f"  {'method':<14} {'largest P ok':>12} {'gave out at':>11} {'time slope (95% CI)':>22} "
              f"{'evals slope':>11} {'grad/fwd':>9} {'median digits':>13}")
        for method, rows in in_group.groupby("method", sort=False):
            ok, budget = rows[rows["status"] == "ok"], rows[rows["status"] == "budget"]
            fit = fits.loc[(method, group)] if (method, group) in fits.index else None
            slope = ("-" if fit is None or fit["slope"] != fit["slope"]
                     else f"{fit['slope']:.2f} ({fit['slope_ci_low']:.2f}, {fit['slope_ci_high']:.2f})")
            print(f"  {method:<14} {_num(ok['P'].max(), 'd'):>12} {_num(budget['size'].min(), 'd'):>11} {slope:>22} "
                  f"{_num(None if fit is None else fit['evaluations_slope'], '.2f'):>11} "
                  f"{_num(ok['grad_over_forward'].median(), '.2f'):>9} {_num(ok['digits'].median(), '.1f'):>13}")


def _num(x, spec: str) -> str:
    if x is None or x != x:  # None or NaN
        return "-"
    return format(int(x) if spec == "d" else float(x), spec)
