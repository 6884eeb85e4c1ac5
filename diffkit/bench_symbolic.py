"""Benchmark: symbolic gradients against P, cold and warm, beside the tape.  ``python -m diffkit.bench_symbolic``.

For MLPs [h, h, h, 10] (tanh, softmax cross-entropy, batch 4; P = 90 is
h = 4, the issue's [4, 4, 4, 10] problem) of growing P, each configuration
(strategy + simplify + engine; the SymEngine one only when it is
installed) runs cold under ``max_seconds`` (default 60) until the
first size it cannot finish; printed per row: the stage times, the warm
evaluation (cached: stage 5 only), the tape's time for the same problem and
their ratio, the swell factors, and the digits against the mpmath referee.
No assertions: timings are printed, never tested.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from . import gradient, reference
from .accuracy import error
from .studies.timing import interleaved
from .problems import mlp_for_size
from .symbolic import BudgetExceeded, _symengine, clear_cache

CONFIGS = (("dag", "cse", "sympy"), ("naive", "cse", "symengine"), ("naive", "cse", "sympy"),
           ("naive", "none", "sympy"))
SIZES = (24, 90, 300, 1000, 3000, 10_000, 20_000, 40_000)  # 24: the smallest [h, h, h, 10] net (h = 1)
REPEATS = 7  # median of 7 warm calls: enough to steady sub-millisecond timings


def _median_wall(fn, repeats: int = REPEATS) -> float:
    return float(np.median(interleaved({0: fn}, repeats)[0]))  # (the caller has made the first, cold call)


def bench_one(prob, strategy: str, simplify: str, engine: str, max_seconds: float, accuracy: bool = True,
              max_ops: int = 10**9) -> dict:
    """One cold symbolic call (and warm calls, tape calls, digits) on one problem, as a row."""
    row = dict(config=f"{strategy}+{simplify}+{engine}", P=prob.size)
    options = dict(strategy=strategy, simplify=simplify, engine=engine)
    clear_cache()
    start = time.perf_counter()
    try:
        cold = gradient(prob, method="symbolic", max_seconds=max_seconds, max_ops=max_ops, **options)
    except BudgetExceeded as err:
        return dict(row, status=f"budget: {err.stage} {err.done}/{err.total}, {err.reason}",
                    cold_s=time.perf_counter() - start,
                    **{k: v for k, v in err.sizes.items() if isinstance(v, (int, float))})
    c = cold.cost.counters
    warm = _median_wall(lambda: gradient(prob, method="symbolic", **options))
    tape = _median_wall(lambda: gradient(prob, method="reverse"))
    row.update(status="ok", cold_s=cold.cost.wall_s, **{k: c[k] for k in ("build_s", "diff_s", "simplify_s",
               "compile_s", "f_ops", "grad_ops", "grad_dag_ops", "cse_ops", "cse_temporaries", "swell",
               "swell_dag")}, warm_s=warm, tape_s=tape, warm_over_tape=warm / tape)
    if accuracy:
        row["digits"] = error(cold, reference(prob, digits=30, max_coordinates=0)).digits
    return row


def run_benchmark(sizes=SIZES, configs=CONFIGS, max_seconds: float = 60.0, accuracy: bool = True,
                  echo=print, max_ops: int = 10**9):
    """Rows for every configuration and size; a configuration stops at its first size over budget."""
    import pandas as pd
    rows = []
    for strategy, simplify, engine in configs:
        if engine == "symengine" and _symengine() is None:
            echo(f"{strategy}+{simplify}+{engine}: skipped (pip install symengine)")
            continue
        for P in sizes:
            prob = mlp_for_size(P, depth=3, batch=4)
            row = bench_one(prob, strategy, simplify, engine, max_seconds, accuracy, max_ops)
            rows.append(row)
            echo(_line(row))
            if row["status"] != "ok":
                break
    return pd.DataFrame(rows)


def _line(row: dict) -> str:
    head = f"{row['config']:<20} P={row['P']:>6}  cold {row['cold_s']:7.2f} s"
    if row["status"] != "ok":
        return f"{head}  STOPPED ({row['status']})"
    return (f"{head} (build {row['build_s']:.2f} diff {row['diff_s']:.2f} simplify {row['simplify_s']:.2f} "
            f"compile {row['compile_s']:.2f})  warm {row['warm_s'] * 1e3:8.3f} ms  tape {row['tape_s'] * 1e3:6.3f} ms"
            f"  warm/tape {row['warm_over_tape']:6.2f}  swell {row['swell']:.3g} (dag {row['swell_dag']:.2f})"
            f"  digits {row.get('digits', float('nan')):.1f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="symbolic cold/warm cost against P, beside the tape")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="target P values")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="cold budget per call (default 60)")
    parser.add_argument("--configs", nargs="+", default=["+".join(c) for c in CONFIGS],
                        help="strategy+simplify+engine, e.g. dag+cse+sympy naive+none+sympy")
    parser.add_argument("--max-ops", type=int, default=10**9,
                        help="size budget per call (default 1e9: the benchmark measures time, so size rarely binds)")
    parser.add_argument("--no-accuracy", action="store_true", help="skip the mpmath reference")
    parser.add_argument("--csv", help="also write the rows to this CSV file")
    args = parser.parse_args(argv)
    configs = [tuple((text.split("+") + ["cse", "sympy"][len(text.split("+")) - 1:])[:3]) for text in args.configs]
    table = run_benchmark(args.sizes, configs, args.max_seconds, not args.no_accuracy, max_ops=args.max_ops)
    print(f"\nLargest P finished within {args.max_seconds:g} s, per configuration:")
    for config, group in table.groupby("config", sort=False):
        done = group[group["status"] == "ok"]
        print(f"  {config}: {int(done['P'].max()) if len(done) else 'none'}")
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
