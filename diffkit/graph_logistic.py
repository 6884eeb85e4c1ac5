"""Baydin et al.'s logistic map drawn twice, side by side: the tape's graph of l_n and SymPy's tree of dl_n/dx.

The tape records each operation of l_n once; the symbolic derivative, drawn
as a tree, repeats every shared subexpression (expression swell, Table 1 of
Baydin et al. 2018).
"""
from __future__ import annotations

import html
from typing import Any

import numpy as np

from .graph import graph
from .graph_dot import HEADER, expression_lines, fmt_number, graph_body

__all__ = ["logistic_map_dot"]


def logistic_map_dot(n: Any, x: float = 0.25, decimals: int = 2) -> str:
    """The tape's graph of l_n beside the SymPy expression tree of dl_n/dx (Baydin et al. 2018, Table 1).

    ``n`` is one n (1 to 6) or several, drawn one pair per row.  The tree
    draws every repeated subexpression again; the tape records each once.

    >>> dot = logistic_map_dot(2)
    >>> "cluster_tape2" in dot and "cluster_sympy2" in dot
    True
    """
    ns = [int(k) for k in np.atleast_1d(n)]
    if not ns or not all(1 <= k <= 6 for k in ns):
        raise ValueError(f"n must be between 1 and 6 (the expression tree of dl_n/dx doubles with each n); got {n}")
    # (dot stacks the pairs bottom-up in the order given, so n = 1 goes last to come out on top)
    return "\n".join(['digraph "logistic_map" {', *HEADER, *(line for k in reversed(ns) for line in _logistic_pair(k, x, decimals)),
                      "}"]) + "\n"


def _logistic_pair(n: int, x: float, decimals: int) -> list[str]:
    import sympy

    from .baydin import X, logistic_map

    g = graph(lambda t: logistic_map(t[0], n), np.array([float(x)]), names=["x"], output_name=f"l{n}")
    derivative = sympy.diff(logistic_map(X, n), X)
    tree, deepest = expression_lines(derivative, prefix=f"e{n}_")
    # invisible edges from the tape's output to the tree's deepest leaves put the tree to its right (rankdir=LR)
    beside = [f"t{n}_out -> {leaf} [style=invis];" for leaf in deepest]
    tape_title = f"tape: l{n} at x = {fmt_number(x, decimals)} ({len(g.gates())} gates)"
    sympy_title = f"SymPy: dl{n}/dx, {sympy.count_ops(derivative)} ops ({sum(' -> ' not in t for t in tree)} nodes)"
    return [f"subgraph cluster_tape{n} {{", f'label="{html.escape(tape_title)}"; color="#4a6fa5";',
            *graph_body(g, False, decimals, prefix=f"t{n}_", ranks=False), "}",
            f"subgraph cluster_sympy{n} {{", f'label="{html.escape(sympy_title)}"; color="#7a4a9a";', *tree, "}",
            *beside]
