"""``diffkit bench``: the tape beside hand-written backprop, torch, jax, autograd, FD and symbolic (MLPs, P ~ 1e2..1e6)."""
from __future__ import annotations

import sys

from diffkit.commands import UsageError, split_names, check_output_file


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="time the tape against hand-written backprop and the peers on MLPs",
                       description="Gradient/forward of each implementation against its own forward (timed in "
                                   "interleaved pairs, median and 95% bootstrap interval, floors checked), times, "
                                   "ratios against hand-written backprop, and peak memory, on MLPs [h,h,h,10] "
                                   "(tanh, softmax cross-entropy, L2, batch 64) at P ~ 1e2..1e6.")
    p.add_argument("--quick", action="store_true",
                   help="7 pairs at least, 1 s per ratio, small FD/symbolic budgets (a few minutes)")
    p.add_argument("--threads", default="1,2", help="comma-separated BLAS thread counts (default 1,2)")
    p.add_argument("--sizes", default=None, help="comma-separated target P (default 100,1000,10000,100000,1000000)")
    p.add_argument("--methods", "--method", dest="methods", action="append", default=None,
                   help="comma-separated, from: handwritten,reverse,torch,jax,autograd,central,symbolic (default all)")
    p.add_argument("--repeats", type=int, default=None,
                   help="(forward, gradient) pairs at least per ratio, >= 7 (default 7 quick, 15 full)")
    p.add_argument("--no-memory", action="store_true", help="skip the tracemalloc peak-memory runs")
    p.add_argument("--system-malloc", action="store_true",
                   help="leave glibc's default (return freed blocks to the kernel; large arrays page-fault again)")
    p.add_argument("--csv", metavar="FILE", help="also write the tidy table (one row per P, threads, method)")
    p.add_argument("--tape", action="store_true",
                   help="the user-written MLP through dk.gradient and dk.compile beside hand-written backprop, "
                        "JAX-jit, PyTorch and autograd, interleaved, 1 thread (diffkit/bench_tape.py)")
    p.add_argument("--gradbench", action="store_true",
                   help="instead: every GradBench eval through the tape and the peers, one thread, interleaved "
                        "(diffkit.gradbench.bench); writes reports/data/gradbench.csv unless --csv; --quick: a few "
                        "sizes per eval")
    p.add_argument("--evals", default=None, help="with --gradbench: comma-separated evals (default all)")
    p.add_argument("--processes", type=int, default=1,
                   help="with --tape: repeat the interleaved run in this many fresh processes and pool them; a "
                        "process's memory layout moves a ratio by a few percent, and the intervals then span that "
                        "(default 1)")
    p.set_defaults(func=run)


def _int(text: str) -> int:
    """An integer written as 1000 or 1e3 (not 2.5)."""
    value = float(text)
    if value != int(value):
        raise ValueError(text)
    return int(value)


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(_int(v) for v in text.split(",") if v.strip())
    except (ValueError, OverflowError):
        raise UsageError(f"--{what} must be comma-separated integers, e.g. 1,2; got {text!r}") from None
    if not values or min(values) < 1:
        raise UsageError(f"--{what} must list positive integers; got {text!r}")
    return values


def run(args) -> int:
    if args.processes < 1:
        raise UsageError(f"--processes must be a positive integer; got {args.processes}")
    if args.processes > 1 and not args.tape:
        raise UsageError("--processes pools runs of --tape: it goes with --tape")
    if args.tape:
        from diffkit.bench_tape import main
        main(_ints(args.sizes, "sizes") if args.sizes else None, rounds=max(7, args.repeats or 15),
             memory=not args.no_memory, processes=args.processes)
        return 0
    if args.gradbench:
        from diffkit.gradbench.bench import command  # noqa: PLC0415
        return command(args)
    if args.evals:
        raise UsageError("--evals selects GradBench evals: it goes with --gradbench")
    from diffkit.bench import METHOD_ORDER, print_bench, run_bench

    check_output_file(args.csv, "--csv")
    methods = None
    if args.methods:
        methods = tuple(split_names(args.methods, "--methods", METHOD_ORDER))
    if args.repeats is not None and args.repeats < 7:
        raise UsageError(f"--repeats must be >= 7 (a median of at least 7 runs); got {args.repeats}")
    df = run_bench(quick=args.quick, threads=_ints(args.threads, "threads"),
                   sizes=_ints(args.sizes, "sizes") if args.sizes else None, methods=methods, repeats=args.repeats,
                   memory=not args.no_memory, keep_memory=not args.system_malloc,
                   progress=lambda msg: print(f"  {msg}", file=sys.stderr, flush=True))
    print_bench(df)
    if args.csv:
        df.to_csv(args.csv, index=False)
        print(f"wrote {args.csv} ({len(df)} rows)")
    return 0
