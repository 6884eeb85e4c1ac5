"""``diffkit graph``: draw a problem's computational graph, values above and gradients below each edge."""
from __future__ import annotations

from pathlib import Path

import diffkit as dk
from diffkit.commands import UsageError
from diffkit.commands.gradient import _problem

EXAMPLE = "diffkit graph --problem seed_circuit --out circuit.svg"
FORMATS = ("svg", "png", "dot")


def add_parser(sub) -> None:
    p = sub.add_parser("graph", help="draw a problem's computational graph (Graphviz)",
                       description="Record a problem on the tape and draw it as the lecture notes do: forward "
                                   "values above each edge, gradients below.  Graphs over --max-nodes collapse into "
                                   f"one box per dense layer.  Example: {EXAMPLE}")
    p.add_argument("--problem", default="seed_circuit",
                   help=f"one of {', '.join(dk.problems.catalogue())}, or logistic (Baydin's logistic map: the tape "
                        "beside the SymPy tree of dl_n/dx; --n sets n) (default seed_circuit)")
    p.add_argument("--out", required=True, help="output file; .svg, .png or .dot (DOT text, needs no Graphviz)")
    p.add_argument("--format", choices=FORMATS, help="output format (default: from --out's suffix)")
    p.add_argument("--collapse", dest="collapse", action="store_const", const=True, default=None,
                   help="always collapse into groups (default: only graphs over --max-nodes nodes)")
    p.add_argument("--expand", dest="collapse", action="store_const", const=False, help="never collapse")
    p.add_argument("--max-nodes", type=int, default=dk.graph.MAX_NODES,
                   help=f"collapse graphs with more nodes than this (default {dk.graph.MAX_NODES})")
    p.add_argument("--decimals", type=int, default=2, help="decimals of the numbers on the edges (default 2)")
    p.add_argument("--n", type=int, default=4, help="logistic map: which l_n, 1 to 6 (default 4)")
    # the mlp options of `diffkit gradient`, read by the same function
    p.add_argument("--layers", default="4,16,3", help="mlp layer sizes, comma-separated (default 4,16,3)")
    p.add_argument("--activation", default="tanh", help=f"mlp activation: {', '.join(dk.nn.ACTIVATIONS)}")
    p.add_argument("--loss", default="softmax_ce", help="mlp cost (see `diffkit gradient --help`)")
    p.add_argument("--batch", type=int, default=32, help="mlp batch size (default 32)")
    p.add_argument("--l2", type=float, default=0.0, help="mlp weight decay lambda (default 0)")
    p.add_argument("--seed", type=int, default=0, help="mlp data seed (default 0)")
    p.set_defaults(func=run)


def _format(args) -> str:
    fmt = args.format or Path(args.out).suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise UsageError(f"--out {args.out!r}: cannot tell the format from its suffix; end it in .svg, .png or .dot "
                         "or give --format")
    return fmt


def _dot(args) -> str:
    if args.problem == "logistic":
        from diffkit.graph_logistic import logistic_map_dot

        try:
            return logistic_map_dot(args.n, decimals=args.decimals)
        except ValueError as err:
            raise UsageError(f"--n: {err}") from None
    g = dk.graph(_problem(args))
    return g.to_dot(args.collapse, max_nodes=args.max_nodes, decimals=args.decimals)


def run(args) -> int:
    fmt = _format(args)
    if args.max_nodes < 1 or not 0 <= args.decimals <= 15:
        raise UsageError(f"--max-nodes must be >= 1 and --decimals 0 to 15; got {args.max_nodes}, {args.decimals}")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise UsageError(f"--out {args.out!r}: the directory {out.parent} does not exist")
    dot = _dot(args)
    data = dot.encode() if fmt == "dot" else dk.graph.render_dot(dot, fmt)
    tmp = out.with_name(f".{out.name}.partial")  # whole or not at all
    tmp.write_bytes(data)
    tmp.replace(out)
    print(f"wrote {out} ({len(data)} bytes)")
    return 0
