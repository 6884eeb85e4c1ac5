"""Baydin et al. 2018 (JMLR 18:153), Table 1: expression swell on the logistic map, measured.

Used by ``studies/baydin_table1.py`` and the report; also importable as
``diffkit.symbolic.baydin_table1``.
"""
from __future__ import annotations

import numpy as np
import sympy

from .symbolic_program import dag_gradient

__all__ = ["baydin_table1", "growth", "logistic_map", "BAYDIN_CLOSED_FORMS", "X"]

# The paper's closed forms for n = 1..4, l_1 = x, l_{n+1} = 4 l_n (1 - l_n) (JMLR 18(153), Table 1).
X = sympy.Symbol("x", real=True)
BAYDIN_CLOSED_FORMS = {
    1: (X, sympy.Integer(1)),
    2: (4 * X * (1 - X), 4 - 8 * X),
    3: (16 * X * (1 - X) * (1 - 2 * X) ** 2, 16 * (1 - 10 * X + 24 * X ** 2 - 16 * X ** 3)),
    4: (64 * X * (1 - X) * (1 - 2 * X) ** 2 * (1 - 8 * X + 8 * X ** 2) ** 2,
        64 * (1 - 42 * X + 504 * X ** 2 - 2640 * X ** 3 + 7040 * X ** 4 - 9984 * X ** 5 + 7168 * X ** 6
              - 2048 * X ** 7)),
}


def logistic_map(x, n: int):
    """l_1 = x, l_{n+1} = 4 l_n (1 - l_n), written once (runs on floats, tape arrays and SymPy)."""
    for _ in range(n - 1):
        x = 4 * x * (1 - x)
    return x


def baydin_table1(n_max: int = 8):
    """Baydin et al. 2018, Table 1, measured with ``sympy.count_ops``, beside the tape and the DAG strategy.

    Columns: ``l_n`` (ops of l_n), ``naive`` (``diff`` without
    simplification), ``expanded`` (the expanded polynomial, the paper's
    "simplified" form; computed in ``sympy.Poly`` arithmetic, which gives
    ``expand(diff(l_n))`` in milliseconds where ``expand`` itself takes 30 s
    at n = 8), ``cse`` (ops of ``sympy.cse`` output,
    temporaries included), ``tape`` (nodes the reverse tape records for the
    same program, leaf and indexing included), ``dag`` (ops of the DAG
    strategy's gradient program), and ``closed_form_ok`` (n <= 4: the paper's
    l_n and dl_n/dx equal diffkit's by ``simplify(a - b) == 0``; None beyond).

    >>> t = baydin_table1(3)
    >>> t["naive"].tolist(), t["closed_form_ok"].tolist()
    ([0, 2, 21], [True, True, True])
    """
    import pandas as pd

    from .reverse import tape_gradient
    rows = []
    for n in range(1, n_max + 1):
        ln = logistic_map(X, n)
        d = sympy.diff(ln, X)
        repl, reduced = sympy.cse(d)
        _, _, tape_nodes, *_ = tape_gradient(lambda t: logistic_map(t[0], n), np.array([0.25]))
        dag = dag_gradient(ln, [X], lambda *a: None)
        ok = None
        if n in BAYDIN_CLOSED_FORMS:
            l_paper, d_paper = BAYDIN_CLOSED_FORMS[n]
            ok = sympy.simplify(ln - l_paper) == 0 and sympy.simplify(d - d_paper) == 0
        rows.append(dict(n=n, l_n=sympy.count_ops(ln), naive=sympy.count_ops(d),
                         expanded=sympy.count_ops(logistic_map(sympy.Poly(X, X), n).diff(X).as_expr()),
                         cse=sum(sympy.count_ops(e) for _, e in repl) + sympy.count_ops(reduced[0]),
                         tape=tape_nodes, dag=dag.sizes()["assigned_ops"], closed_form_ok=ok))
    return pd.DataFrame(rows).set_index("n", drop=False)


def growth(n, ops) -> dict:
    """Fits of a size column: ``ratio`` per step of log-linear ops ~ c r^n, and ``slope`` of linear ops ~ a + b n."""
    n, ops = np.asarray(n, dtype=float), np.asarray(ops, dtype=float)
    keep = ops > 0
    ratio = float(np.exp(np.polyfit(n[keep], np.log(ops[keep]), 1)[0])) if keep.sum() >= 2 else float("nan")
    return {"ratio": ratio, "slope": float(np.polyfit(n, ops, 1)[0])}
