"""Baydin et al. 2018 (JMLR 18:153): Figure 3 (finite-difference error against h) and Table 1 (expression
swell on the logistic map), measured.

Figure 3 differentiates f(x) = 64x(1 - x)(1 - 2x)^2(1 - 8x + 8x^2)^2 at x0 = 0.2.  The float64 input is
the double nearest 0.2, 0.2000000000000000111..., not 1/5, so the reference is f' *at that double*,
computed exactly (f is a polynomial: SymPy evaluates f' at the double as a rational) and rounded to 60
digits: :data:`BAYDIN_REFERENCE`.  It differs from f'(1/5) = 708288/78125 (:data:`BAYDIN_DF`) by
7.5e-16, nearly half an ulp of 9.07, so errors near the float64 floor need it.

Used by ``studies/baydin_figure3.py``, ``studies/baydin_table1.py`` and the report; Table 1 is also
importable as ``diffkit.symbolic.baydin_table1``.
"""
from __future__ import annotations

import mpmath
import numpy as np
import sympy

from .symbolic_program import dag_gradient

__all__ = ["baydin_table1", "growth", "logistic_map", "BAYDIN_CLOSED_FORMS", "X", "baydin_f", "baydin_figure3",
           "figure3_minima", "BAYDIN_X0", "BAYDIN_DF", "BAYDIN_REFERENCE", "paper_naive_ops"]

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


def paper_naive_ops(n: int):
    """Ops of the paper's "naive" derivative: the product rule applied to its closed form of l_n (n <= 4,
    where the paper gives one), unsimplified; None beyond.  Not the same count as differentiating the nested
    program (the ``naive`` column).

    >>> [paper_naive_ops(n) for n in (1, 2, 3, 5)]
    [0, 2, 19, None]
    """
    if n not in BAYDIN_CLOSED_FORMS:
        return None
    return int(sympy.count_ops(sympy.diff(BAYDIN_CLOSED_FORMS[n][0], X)))


def baydin_table1(n_max: int = 8):
    """Baydin et al. 2018, Table 1, measured with ``sympy.count_ops``, beside the tape and the DAG strategy.

    Columns: ``l_n`` (ops of l_n), ``naive`` (``diff`` of the nested program
    l_{n+1} = 4 l_n (1 - l_n), without simplification), ``paper_naive`` (the
    paper's naive form: the product rule on its closed form, n <= 4:
    :func:`paper_naive_ops`), ``expanded`` (the expanded polynomial, the paper's
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

    from .tape.gradient import tape_gradient
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
        rows.append(dict(n=n, l_n=sympy.count_ops(ln), naive=sympy.count_ops(d), paper_naive=paper_naive_ops(n),
                         expanded=sympy.count_ops(logistic_map(sympy.Poly(X, X), n).diff(X).as_expr()),
                         cse=sum(sympy.count_ops(e) for _, e in repl) + sympy.count_ops(reduced[0]),
                         tape=tape_nodes, dag=dag.sizes()["assigned_ops"], closed_form_ok=ok))
    table = pd.DataFrame(rows).set_index("n", drop=False)
    table["paper_naive"] = table["paper_naive"].astype("Int64")  # integers, empty beyond the paper's n = 4
    return table


def growth(n, ops) -> dict:
    """Fits of a size column: ``ratio`` per step of log-linear ops ~ c r^n, and ``slope`` of linear ops ~ a + b n."""
    n, ops = np.asarray(n, dtype=float), np.asarray(ops, dtype=float)
    keep = ops > 0
    ratio = float(np.exp(np.polyfit(n[keep], np.log(ops[keep]), 1)[0])) if keep.sum() >= 2 else float("nan")
    return {"ratio": ratio, "slope": float(np.polyfit(n, ops, 1)[0])}


# --- Figure 3 -----------------------------------------------------------------------------------------------

BAYDIN_X0 = 0.2
with mpmath.workdps(60):
    BAYDIN_DF = mpmath.mpf(708288) / 78125  # f'(1/5), the paper's exact value, to 60 digits


def baydin_f(theta):
    """f(x) = 64 x (1 - x) (1 - 2x)^2 (1 - 8x + 8x^2)^2 on theta[0] (any backend)."""
    x = theta[0]
    return 64 * x * (1 - x) * (1 - 2 * x) ** 2 * (1 - 8 * x + 8 * x ** 2) ** 2


def _reference_at_double(x0: float, digits: int = 60):
    """f'(x0) for the float x0 taken exactly (a binary rational), as an mpf of ``digits`` digits."""
    exact = sympy.diff(baydin_f([X]), X).subs(X, sympy.Rational(x0))  # Rational(float) is the float, exactly
    with mpmath.workdps(digits):
        return mpmath.mpf(sympy.Integer(exact.p)) / mpmath.mpf(sympy.Integer(exact.q))


BAYDIN_REFERENCE = _reference_at_double(BAYDIN_X0)


def baydin_figure3(steps=None, methods=("forward", "central", "complex_step", "richardson")):
    """The step sweep of Baydin et al. (2018), Figure 3: f above at the double nearest 0.2, against f' at that
    double (:data:`BAYDIN_REFERENCE`).

    >>> df = baydin_figure3(steps=[1e-8, 1e-6], methods=["central"])
    >>> bool(df["error"].max() < 1e-7)
    True
    """
    from .fd_sweep import DEFAULT_STEPS, step_sweep  # lazily: fd_sweep re-exports these names

    ref = np.array([BAYDIN_REFERENCE], dtype=object)
    return step_sweep(baydin_f, np.array([BAYDIN_X0]), methods=methods,
                      steps=DEFAULT_STEPS if steps is None else steps, component=0, reference=ref)


MIN_POINTS = 3  # a minimum must be reached by at least this many steps: never one lucky grid point


def figure3_minima(df, window_decades: float = 0.5, floor_factor: float = 2.0):
    """Per method: the robust minimum error and where it is, from a sweep (columns method, h, error).

    ``error_min`` is the :data:`MIN_POINTS`-th smallest error (at least three steps reach it, so round-off
    luck at one step does not set it); ``h_best`` the argmin of the V smoothed over +-``window_decades``
    (geometric mean of the error); ``h_floor_low``..``h_floor_high`` the steps where the smoothed error is
    within ``floor_factor`` of its minimum: a flat floor (the complex step) is reported as that range, not
    as whichever step happened to tie lowest.  ``lowest_point`` and ``h_lowest`` record the raw argmin.

    >>> import pandas as pd
    >>> hs = np.logspace(-12, 0, 13)
    >>> v = pd.DataFrame({"method": "m", "h": hs, "error": 1e-16 / hs + hs ** 2})
    >>> row = figure3_minima(v).iloc[0]
    >>> float(row["h_best"]), float(row["lowest_point"]), round(float(row["error_min"]) / 1e-9, 4)
    (1e-06, 1.01e-10, 1.0)
    """
    import pandas as pd

    rows = []
    for method, g in df.groupby("method", sort=False):
        g = g[(g["h"] > 0) & np.isfinite(g["error"])].sort_values("h")
        if len(g) < MIN_POINTS:
            continue
        h, err = g["h"].to_numpy(), g["error"].to_numpy()
        per_decade = (h.size - 1) / max(np.log10(h[-1] / h[0]), 1e-12)
        half = max(1, int(round(window_decades * per_decade)))
        logs = np.log10(np.maximum(err, np.finfo(float).tiny))
        smooth = pd.Series(logs).rolling(2 * half + 1, center=True, min_periods=half + 1).mean().to_numpy()
        best = int(np.nanargmin(smooth))
        near = np.flatnonzero(smooth <= smooth[best] + np.log10(floor_factor))
        rows.append({"method": method, "error_min": float(np.sort(err)[MIN_POINTS - 1]),
                     "points_at_min": int(np.sum(err <= np.sort(err)[MIN_POINTS - 1])), "h_best": float(h[best]),
                     "h_floor_low": float(h[near.min()]), "h_floor_high": float(h[near.max()]),
                     "lowest_point": float(err.min()), "h_lowest": float(h[int(np.argmin(err))])})
    return pd.DataFrame(rows)
