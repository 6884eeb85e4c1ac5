"""``diffkit gradient``: one problem, one or more methods, side by side (optionally against the reference)."""
from __future__ import annotations

import json

import numpy as np

import diffkit as dk
from diffkit.cli import UsageError
from diffkit.studies.spec import registered_methods

EXAMPLE = "diffkit gradient --problem mlp --layers 4,16,3 --activation tanh --loss softmax_ce --method reverse"


def add_parser(sub) -> None:
    p = sub.add_parser("gradient", help="differentiate one problem with one or more methods",
                       description=f"Differentiate one problem and print value, cost and (with --reference) correct "
                                   f"digits per method.  Example: {EXAMPLE} --reference")
    p.add_argument("--problem", default="mlp", help=f"one of {', '.join(dk.problems.catalogue())} (default mlp)")
    p.add_argument("--layers", default="4,16,3", help="mlp layer sizes, comma-separated (default 4,16,3)")
    p.add_argument("--activation", default="tanh", help=f"mlp activation: {', '.join(dk.nn.ACTIVATIONS)}")
    p.add_argument("--loss", default="softmax_ce",
                   help=f"mlp cost: {', '.join(list(dk.nn.COSTS) + list(dk.nn.COST_ALIASES))}")
    p.add_argument("--batch", type=int, default=32, help="mlp batch size (default 32)")
    p.add_argument("--l2", type=float, default=0.0, help="mlp weight decay lambda (default 0)")
    p.add_argument("--seed", type=int, default=0, help="mlp data seed (default 0)")
    p.add_argument("--method", action="append", metavar="NAME",
                   help="a method from `diffkit methods` (repeat, or comma-separate; default reverse)")
    p.add_argument("--reference", action="store_true", help="compare with the mpmath reference (correct digits)")
    p.add_argument("--digits", type=int, default=50, help="digits of the reference (default 50)")
    p.add_argument("--json", action="store_true", help="print JSON (including the gradients) instead of a table")
    p.set_defaults(func=run)


def _problem(args):
    catalogue = dk.problems.catalogue()
    if args.problem not in catalogue:
        raise UsageError(f"--problem {args.problem!r} is not a problem; valid: {', '.join(catalogue)}")
    if args.problem != "mlp":
        return catalogue[args.problem]()
    try:
        layers = [int(n) for n in args.layers.split(",")]
    except ValueError:
        raise UsageError(f"--layers must be comma-separated integers such as 4,16,3; got {args.layers!r}") from None
    try:
        return dk.problems.mlp(layers, activation=args.activation, loss=args.loss, batch=args.batch, l2=args.l2,
                               seed=args.seed)
    except ValueError as err:
        raise UsageError(f"bad mlp option: {err}") from None


def _methods(args) -> list[str]:
    names = [n.strip() for m in (args.method or ["reverse"]) for n in m.split(",") if n.strip()]
    known = registered_methods()
    for name in names:
        if name not in known:
            raise UsageError(f"--method {name!r} is not a method; valid: {', '.join(known)}")
    return names


def run(args) -> int:
    problem, names = _problem(args), _methods(args)
    if args.digits < 15:
        raise UsageError(f"--digits must be >= 15 to referee float64 results; got {args.digits}")
    ref = dk.reference(problem, digits=args.digits, max_coordinates=0) if args.reference else None
    lines, failed = [], False
    for name in names:
        line = {"method": name}
        try:
            r = dk.gradient(problem, method=name)
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
        print(json.dumps({**head, "methods": lines}, indent=2))
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
