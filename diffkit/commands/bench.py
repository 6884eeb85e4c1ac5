"""``diffkit bench``: the tape beside hand-written backprop, torch, jax, autograd, FD and symbolic (MLPs, P ~ 1e2..1e6)."""
from __future__ import annotations

import sys

from diffkit.cli import UsageError


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
    p.add_argument("--methods", default=None,
                   help="comma-separated, from: handwritten,reverse,torch,jax,autograd,central,symbolic (default all)")
    p.add_argument("--repeats", type=int, default=None,
                   help="(forward, gradient) pairs at least per ratio, >= 7 (default 7 quick, 15 full)")
    p.add_argument("--no-memory", action="store_true", help="skip the tracemalloc peak-memory runs")
    p.add_argument("--system-malloc", action="store_true",
                   help="leave glibc's default (return freed blocks to the kernel; large arrays page-fault again)")
    p.add_argument("--csv", metavar="FILE", help="also write the tidy table (one row per P, threads, method)")
    p.set_defaults(func=run)


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(float(v)) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"--{what} must be comma-separated integers, e.g. 1,2; got {text!r}") from None
    if not values or min(values) < 1:
        raise UsageError(f"--{what} must list positive integers; got {text!r}")
    return values


def run(args) -> int:
    from diffkit.bench import METHOD_ORDER, print_bench, run_bench

    methods = None
    if args.methods:
        methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
        bad = [m for m in methods if m not in METHOD_ORDER]
        if bad or not methods:
            raise UsageError(f"--methods: unknown {', '.join(bad) or '(none given)'}; valid: {', '.join(METHOD_ORDER)}")
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
