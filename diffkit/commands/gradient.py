"""``diffkit gradient``: one problem, one or more methods, side by side (optionally against the reference)."""
from __future__ import annotations

import sys
import time

import numpy as np

import diffkit as dk
from diffkit.commands import UsageError, print_json, split_names
from diffkit.studies.spec import registered_methods

EXAMPLE = "diffkit gradient --problem mlp --layers 4,16,3 --activation tanh --loss softmax_ce --method reverse"
DEFAULT_BUDGET_S = 120.0
# Measured on mlp problems (P x batch from 4e3 to 3e4): seconds per parameter per example, at 50 digits.
REFERENCE_S_PER_P_BATCH = 1.3e-4
SYMBOLIC_S_PER_P_BATCH = 2.6e-3


def add_parser(sub) -> None:
    p = sub.add_parser("gradient", help="differentiate one problem with one or more methods",
                       description=f"Differentiate one problem and print value, cost and (with --reference) correct "
                                   f"digits per method.  Example: {EXAMPLE} --reference")
    p.add_argument("--problem", default="mlp", help=f"one of {', '.join(_problem_names())} (default mlp)")
    p.add_argument("--layers", default="4,16,3", help="mlp layer sizes, comma-separated (default 4,16,3)")
    p.add_argument("--activation", default="tanh", help=f"mlp activation: {', '.join(dk.nn.ACTIVATIONS)}")
    p.add_argument("--loss", default="softmax_ce",
                   help=f"mlp cost: {', '.join(list(dk.nn.COSTS) + list(dk.nn.COST_ALIASES))}")
    p.add_argument("--batch", type=int, default=32, help="mlp batch size (default 32)")
    p.add_argument("--l2", type=float, default=0.0, help="mlp weight decay lambda (default 0)")
    p.add_argument("--seed", type=int, default=0, help="mlp data seed (default 0)")
    p.add_argument("--method", "--methods", dest="method", action="append", metavar="NAME",
                   help="a method from `diffkit methods` (repeat, or comma-separate; default reverse)")
    p.add_argument("--reference", action="store_true", help="compare with the mpmath reference (correct digits)")
    p.add_argument("--digits", type=int, default=50, help="digits of the reference (default 50)")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, metavar="SECONDS",
                   help=f"refuse up front what is estimated to take longer: the reference, the symbolic method "
                        f"(which also stops there); default {DEFAULT_BUDGET_S:g}")
    p.add_argument("--json", action="store_true", help="print JSON (including the gradients) instead of a table")
    p.set_defaults(func=run)


def _problem_names() -> list[str]:
    return [*dk.problems.catalogue(), "baydin"]


def _problem(args):
    catalogue = dk.problems.catalogue()
    if args.problem == "baydin":
        from diffkit.baydin import BAYDIN_X0, baydin_f
        return dk.problems.Problem("baydin", baydin_f, np.array([BAYDIN_X0]), dk.problems._scalar_blocks(["x"]))
    if args.problem not in catalogue:
        raise UsageError(f"--problem {args.problem!r} is not a problem; valid: {', '.join(_problem_names())}")
    if args.problem != "mlp":
        return catalogue[args.problem]()
    try:
        layers = [int(n) for n in args.layers.split(",")]
    except ValueError:
        raise UsageError(f"--layers must be comma-separated integers such as 4,16,3; got {args.layers!r}") from None
    try:
        return dk.problems.mlp(layers, activation=args.activation, loss=args.loss, batch=args.batch, l2=args.l2,
                               seed=args.seed)
    except (ValueError, TypeError, MemoryError) as err:
        raise UsageError(f"bad mlp option: {err}".replace("layers must", "--layers must")) from None


def _methods(args) -> list[str]:
    return split_names(args.method, "--method", registered_methods()) or ["reverse"]


def _work(problem) -> float:
    """P x batch: what the reference's and the symbolic method's costs grow with."""
    return problem.size * max(1, int(problem.meta.get("batch", 1)))


def estimates(problem, names: list[str], reference: bool, digits: int) -> dict[str, float]:
    """Estimated seconds of the slow steps (the mpmath reference, the symbolic method)."""
    out = {}
    if reference:
        out["reference"] = REFERENCE_S_PER_P_BATCH * _work(problem) * max(1.0, digits / 50) ** 1.6
    if "symbolic" in names:
        out["symbolic"] = SYMBOLIC_S_PER_P_BATCH * _work(problem)
    return out


def _check_budget(problem, names, args) -> dict[str, float]:
    if not args.budget > 0:
        raise UsageError(f"--budget must be a number of seconds > 0; got {args.budget}")
    costs = estimates(problem, names, args.reference, args.digits)
    over = {k: v for k, v in costs.items() if v > args.budget}
    if over:
        what = ", ".join(f"the {'reference' if k == 'reference' else 'symbolic method'} would take about "
                         f"{_duration(v)}" for k, v in over.items())
        raise UsageError(f"{problem.name} (P = {problem.size:,}): {what}, more than --budget {args.budget:g} s. "
                         f"Raise it (--budget {max(over.values()) * 1.5:.0f}), choose smaller --layers/--batch, or "
                         f"drop {' and '.join('--reference' if k == 'reference' else '--method symbolic' for k in over)}")
    return costs


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"


def run(args) -> int:
    from tqdm.auto import tqdm
    from diffkit.reference import MAX_DIGITS

    problem, names = _problem(args), _methods(args)
    if not 15 <= args.digits <= MAX_DIGITS:
        raise UsageError(f"--digits must be from 15 (to referee float64 results) to {MAX_DIGITS}; got {args.digits}")
    costs = _check_budget(problem, names, args)
    ref = None
    if args.reference:
        if costs["reference"] > 2:
            print(f"computing the {args.digits}-digit mpmath reference (estimated {_duration(costs['reference'])})",
                  file=sys.stderr, flush=True)
        start = time.perf_counter()
        ref = dk.reference(problem, digits=args.digits, max_coordinates=0)
        if time.perf_counter() - start > 2:
            print(f"reference done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    lines, failed = [], False
    for name in tqdm(names, desc="methods", unit="method", delay=2, file=sys.stderr, leave=False):
        line = {"method": name}
        options = {"max_seconds": args.budget} if name == "symbolic" else {}
        try:
            r = dk.gradient(problem, method=name, **options)
        except Exception as err:  # noqa: BLE001  (one failing method does not hide the others)
            failed = True
            lines.append({**line, "error": f"{type(err).__name__}: {err}"})
            continue
        line.update(value=r.value, wall_s=r.cost.wall_s, evaluations=r.cost.evaluations,
                    grad_norm=float(np.linalg.norm(r.grad)), grad=r.grad.tolist())
        if ref is not None:
            e = dk.error(r, ref)
            line.update(digits=e.digits, max_rel=e.max_rel, worst=e.worst_name)
        lines.append(line)
    head = {"problem": problem.name, "P": problem.size}
    if ref is not None:
        head.update(reference_value=float(ref.value), reference_digits=args.digits)
    if args.json:
        print_json({**head, "methods": lines})
    else:
        _table(head, lines, ref is not None)
    return 1 if failed else 0


def _table(head: dict, lines: list[dict], with_ref: bool) -> None:
    print(f"{head['problem']}, P = {head['P']}" + (f", reference f = {head['reference_value']:.17g} "
                                                    f"({head['reference_digits']} digits)" if with_ref else ""))
    print(f"{'method':<14} {'value':>24} {'|grad|':>12} {'wall ms':>10} {'evals':>7}"
          + (f" {'digits':>6} {'max rel err':>11}  worst" if with_ref else ""))
    for line in lines:
        if "error" in line:
            print(f"{line['method']:<14} failed: {line['error']}")
            continue
        text = (f"{line['method']:<14} {line['value']:>24.17g} {line['grad_norm']:>12.6g} "
                f"{line['wall_s'] * 1e3:>10.3f} {line['evaluations']:>7d}")
        if with_ref:
            text += f" {line['digits']:>6.1f} {line['max_rel']:>11.2e}  {line['worst']}"
        print(text)
