"""``diffkit sweep``: error against step size for the finite-difference methods (the V-curve), as a table or CSV."""
from __future__ import annotations

import numpy as np

from diffkit.commands import UsageError, split_names, check_output_file

PROBLEMS = ("seed_sigmoid_neuron", "baydin", "mlp")
METHODS = ("forward", "backward", "central", "central4", "complex_step", "richardson")


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="error of each finite-difference method against the step h")
    p.add_argument("--problem", default="baydin", choices=PROBLEMS, help="function to differentiate")
    p.add_argument("--methods", "--method", dest="methods", action="append",
                   help=f"comma-separated or repeated, from: {', '.join(METHODS)} (default "
                        f"forward,central,complex_step,richardson)")
    p.add_argument("--component", default="norm", help="'norm', 'all' or a component index (default norm)")
    p.add_argument("--steps", default="-16,0,65", help="log10(h) start,stop,count; write it as --steps=-16,0,65 (the default)")
    p.add_argument("--layers", default="4,8,3", help="mlp layer sizes (with --problem mlp)")
    p.add_argument("--activation", default="tanh", help="mlp activation")
    p.add_argument("--loss", default="softmax_cross_entropy", help="mlp loss")
    p.add_argument("--seed", type=int, default=0, help="mlp data seed")
    p.add_argument("--csv", metavar="FILE", help="write the full tidy table to FILE")
    p.set_defaults(func=run)


def _parse(args):
    methods = split_names(args.methods, "--methods", METHODS) or ["forward", "central", "complex_step", "richardson"]
    try:
        start, stop, count = (float(v) for v in args.steps.split(","))
        if not (np.isfinite(start) and np.isfinite(stop) and start < stop and count == int(count) and
                2 <= count <= 10_000 and -320 < start and stop < 300):
            raise ValueError
        steps = np.logspace(start, stop, int(count))
    except ValueError:
        raise UsageError(f"--steps must be 'start,stop,count' in log10(h), e.g. -16,0,65; got {args.steps!r}") from None
    if args.component in ("norm", "all"):
        component = None if args.component == "all" else "norm"
    else:
        try:
            component = int(args.component)
            if component < 0:
                raise ValueError
        except ValueError:
            raise UsageError(f"--component must be 'norm', 'all' or an integer; got {args.component!r}") from None
    return methods, steps, component


def _problem(args):
    import diffkit as dk
    from diffkit.baydin import BAYDIN_X0, baydin_f

    if args.problem == "baydin":
        return baydin_f, np.array([BAYDIN_X0])
    if args.problem == "seed_sigmoid_neuron":
        return dk.problems.seed_sigmoid_neuron(), None
    try:
        layers = [int(n) for n in args.layers.split(",")]
    except ValueError:
        raise UsageError(f"--layers must be comma-separated integers, e.g. 4,8,3; got {args.layers!r}") from None
    try:
        return dk.problems.mlp(layers, activation=args.activation, loss=args.loss, batch=16, seed=args.seed), None
    except (ValueError, TypeError, MemoryError) as err:
        raise UsageError(str(err)) from None


def run(args) -> int:
    from diffkit.baydin import BAYDIN_DF
    from diffkit.fd_sweep import step_sweep, sweep_summary

    check_output_file(args.csv, "--csv")
    methods, steps, component = _parse(args)
    f, theta = _problem(args)
    size = f.size if theta is None else theta.size
    if isinstance(component, int) and component >= size:
        raise UsageError(f"--component {component} is outside theta: {args.problem} has {size} components "
                         f"(0 to {size - 1}); or use 'norm' or 'all'")
    ref = np.array([BAYDIN_DF], dtype=object) if args.problem == "baydin" else None
    df = step_sweep(f, theta, methods=methods, steps=steps, component=component, reference=ref)
    for method, why in df.attrs["skipped"].items():
        print(f"skipped {method}: {why}")
    if args.csv:
        df.to_csv(args.csv, index=False)
        print(f"wrote {len(df)} rows to {args.csv}")
    print(sweep_summary(df).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0
