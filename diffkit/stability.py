"""The stability study: every primitive, stable and naive, swept from -1000 to 1000 against mpmath.

Each *case* is a scalar function of one input x, written once against the
array namespace (so every method and backend runs the same code), plus its
exact value and derivative as closed forms written directly in mpmath (the
referee shares no code path, and no derivative rule, with diffkit):

==================  ==============================  ========================  =====================
case                function of x                   exact value               exact derivative
==================  ==============================  ========================  =====================
sigmoid             sigma(x)                        1 / (1 + e^-x)            sigma(x) sigma(-x)
log_sigmoid         log sigma(x)                    -log1p(e^-x)              sigma(-x)
softplus            log(1 + e^x)                    log1p(e^x)                sigma(x)
tanh                tanh(x)                         tanh(x)                   sech(x)^2
logsumexp           logsumexp([x, 0])               log1p(e^x)                sigma(x)
softmax             softmax([x, 0])[0]              sigma(x)                  sigma(x) sigma(-x)
log_softmax         log_softmax([x, 0])[0]          -log1p(e^-x)              sigma(-x)
bce                 BCE(logit x, label 1)           log1p(e^-x)               -sigma(-x)
softmax_ce          CE(logits [x, 0], class 1)      log1p(e^x)                sigma(x)
==================  ==============================  ========================  =====================

Errors are relative, with the denominator ``max(|exact|, DBL_MIN)``: below the
smallest normal number float64 itself keeps only an absolute accuracy of
2^-1074, so a subnormal (or flushed-to-zero) result is judged against
DBL_MIN = 2.2e-308 (an exact result still gets all its digits).

The float64 edges, derived by hand (u = 2^-53 the unit roundoff):

* ``53 log 2 = 36.7368``: ``1 + e^-x`` rounds to 1 (so sigma(x) rounds to 1, and log(1 + e^x) to 0 for x below -36.74);
* ``log(DBL_MAX) = 709.7827``: ``exp(x)`` overflows to inf;
* ``1075 log 2 = 745.1332``: ``exp(-x)`` underflows to 0 (below half the smallest subnormal 2^-1074).

Documented domains of the stable variants (where the 1e-13 relative accuracy
is promised; outside them the *absolute* error stays at rounding level, but a
tiny result is the difference of two numbers near 1).  With ``C = log(1e-13/u)
= 6.8`` the number of e-folds before cancellation eats 1e-13:

* tanh' = 1 - tanh^2 (the tape keeps it, for speed and memory): |x| <= C / 2
  (1 - t^2 has absolute error ~2u against a true 4 e^{-2|x|}; measured: 3 digits lost first at 3.90 / -4.30);
* softmax' and log_softmax' by the generic rules s (g - <g, s>) and
  g - s sum(g): x <= C (they form 1 - s_0 once s_0 is near 1; measured: first at 6.85 and 7.75).

Everything else (sigmoid, log_sigmoid, softplus, logsumexp, the two cross-entropies from logits) holds
1e-13 over the whole sweep.  The ``central`` method never evaluates f at x: its *value* is the stencil's
O(h^2) estimate, so its value digits are not meaningful (``digits`` is NaN, ``meaningful`` False).  A
non-finite result never has status ``ok``: its status says why (for SymPy, the expression it evaluates).

>>> import diffkit as dk
>>> df = dk.stability_sweep(cases=["softplus"], methods=["reverse"], grid=[-800.0, 0.0, 800.0])
>>> df[df.quantity == "value"].pivot(index="x", columns="variant", values="finite").to_dict("list")
{'naive': [True, True, False], 'stable': [True, True, True]}
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import mpmath
import numpy as np
import pandas as pd

from . import nn
from .accuracy import correct_digits
from .backends import namespace
from .methods import METHODS
from .api import get_method, gradient, _load_methods

__all__ = ["stability_sweep", "first_failures", "sweep_grid", "CASES", "EDGES", "Case"]

U = np.finfo(np.float64).eps / 2  # unit roundoff 2^-53
DBL_MIN = np.finfo(np.float64).tiny  # smallest normal: the floor of the relative error (see module doc)
EDGES = {
    "one_plus_tiny": 53 * math.log(2),  # 1 + e^-x == 1 beyond it
    "exp_overflow": math.log(np.finfo(np.float64).max),  # exp(x) == inf beyond it
    "exp_underflow": 1075 * math.log(2),  # exp(-x) == 0 beyond it (half the smallest subnormal)
}
TOL = 1e-13  # the accuracy promised for the stable variants inside their documented domains
CANCEL = math.log(TOL / U)  # e-folds of a 1 - s cancellation before it exceeds TOL: 6.8


def _pair(theta):
    """[x, 0] in theta's backend, from a one-element theta."""
    return namespace(theta).concatenate([theta, 0 * theta])


def _sig(x):
    return 1 / (1 + mpmath.exp(-x))


def _softplus(x):
    return mpmath.log1p(mpmath.exp(x))


@dataclass(frozen=True)
class Case:
    """A scalar function of x in both variants, with its exact value and derivative in mpmath."""

    name: str
    fn: Callable[[Any, bool], Any]  # fn(theta, stable) with theta of shape (1,)
    value: Callable
    deriv: Callable
    domain: dict  # quantity -> (lo, hi) where the stable variant promises TOL (absent: everywhere)


CASES: dict[str, Case] = {c.name: c for c in [
    Case("sigmoid", lambda t, s: namespace(t).sum(nn.sigmoid(t, stable=s)), _sig, lambda x: _sig(x) * _sig(-x), {}),
    Case("log_sigmoid", lambda t, s: namespace(t).sum(nn.log_sigmoid(t, stable=s)), lambda x: -_softplus(-x),
         lambda x: _sig(-x), {}),
    Case("softplus", lambda t, s: namespace(t).sum(nn.softplus(t, stable=s)), _softplus, _sig, {}),
    Case("tanh", lambda t, s: namespace(t).sum(nn.tanh(t, stable=s)), mpmath.tanh, lambda x: mpmath.sech(x) ** 2,
         {"grad": (-CANCEL / 2, CANCEL / 2)}),
    Case("logsumexp", lambda t, s: nn.logsumexp(_pair(t), stable=s), _softplus, _sig, {}),
    Case("softmax", lambda t, s: nn.softmax(_pair(t), stable=s)[0], _sig, lambda x: _sig(x) * _sig(-x),
         {"grad": (-math.inf, CANCEL)}),
    Case("log_softmax", lambda t, s: nn.log_softmax(_pair(t), stable=s)[0], lambda x: -_softplus(-x),
         lambda x: _sig(-x), {"grad": (-math.inf, CANCEL)}),
    Case("bce", lambda t, s: nn.binary_cross_entropy(t, np.ones(1), stable=s), lambda x: _softplus(-x),
         lambda x: -_sig(-x), {}),
    Case("softmax_ce", lambda t, s: nn.softmax_cross_entropy(_pair(t), np.array([0.0, 1.0]), stable=s), _softplus,
         _sig, {}),
]}


def sweep_grid(lo: float = -1000.0, hi: float = 1000.0, *, coarse: int = 201, edge_halfwidth: float = 1.0,
               edge_points: int = 201, tiny_decades: tuple = (-300, -1), tiny_points: int = 60) -> np.ndarray:
    """Sorted inputs: ``coarse`` even points on [lo, hi], ``edge_points`` within ``edge_halfwidth`` of each
    edge +-36.74, +-709.78, +-745.13 (and the edges themselves), and +-10^k over ``tiny_decades``.

    >>> g = sweep_grid(coarse=5, edge_points=3, tiny_points=2)
    >>> len(g), float(g[0]), float(g[-1]), 0.0 in g
    (27, -1000.0, 1000.0, True)
    """
    if not lo < hi or coarse < 2 or edge_points < 1 or tiny_points < 0 or edge_halfwidth < 0:
        raise ValueError(f"sweep_grid needs lo < hi, coarse >= 2, edge_points >= 1, tiny_points >= 0 and "
                         f"edge_halfwidth >= 0; got lo={lo}, hi={hi}, coarse={coarse}, edge_points={edge_points}, "
                         f"tiny_points={tiny_points}, edge_halfwidth={edge_halfwidth}")
    parts = [np.linspace(lo, hi, coarse), [0.0]]
    for edge in EDGES.values():
        for e in (edge, -edge):
            parts += [np.linspace(e - edge_halfwidth, e + edge_halfwidth, edge_points), [e]]
    tiny = np.logspace(*tiny_decades, tiny_points) if tiny_points else np.zeros(0)
    parts += [tiny, -tiny]
    g = np.unique(np.concatenate([np.asarray(p, dtype=float) for p in parts]))
    return g[(g >= lo) & (g <= hi)]


def _exact(case: Case, xs: np.ndarray, digits: int) -> tuple[list, list]:
    with mpmath.workdps(digits):
        vals, ders = [], []
        for x in xs:
            m = mpmath.mpf(float(x))
            vals.append(case.value(m))
            ders.append(case.deriv(m))
    return vals, ders


def _rel_error(computed: float, exact) -> float:
    if not np.isfinite(computed):
        return math.inf
    return float(abs(mpmath.mpf(computed) - exact) / max(abs(exact), DBL_MIN))


def _run(case: Case, stable: bool, method: str, x: float):
    f = lambda t: case.fn(t, stable)  # noqa: E731
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = gradient(f, np.array([x]), method=method)
    return r.value, float(r.grad[0])


def _available(methods: Sequence[str]) -> tuple[list[str], list[str]]:
    _load_methods()  # every method module present
    have = [m for m in methods if m in METHODS and METHODS[m].available]
    return have, [m for m in methods if m not in have]


def stability_sweep(cases: Sequence[str] | None = None, *, variants: Sequence[str] = ("stable", "naive"),
                    methods: Sequence[str] = ("reverse", "central", "symbolic"), grid: Any = None,
                    digits: int = 50, thin: dict | None = None) -> pd.DataFrame:
    """Value and gradient errors of each case x variant x method over ``grid``, against mpmath.

    One tidy row per (case, variant, method, x, quantity) with columns
    ``computed``, ``exact`` (float rounding of the mpmath truth),
    ``rel_error`` (denominator max(|exact|, DBL_MIN)), ``digits``
    (-log10 rel_error clipped to [0, 16]; NaN where not ``meaningful``: a
    stencil's value), ``finite``, ``in_domain`` (inside the documented domain
    of the stable variant) and ``status`` (``ok``; ``non-finite: why``; or the
    error a method raised).  Methods that are not registered are left
    out and listed in ``df.attrs["skipped"]``; ``thin={"symbolic": 10}`` runs
    a slow method on every 10th grid point only.  ``grid`` is an array of
    inputs or a dict of :func:`sweep_grid` options (default: its defaults).
    """
    names = list(CASES) if cases is None else list(cases)
    unknown = [c for c in names if c not in CASES]
    bad_variants = [v for v in variants if v not in ("stable", "naive")]
    if unknown or bad_variants:
        raise ValueError(f"unknown case(s) {unknown or ''} / variant(s) {bad_variants or ''}; valid cases: "
                         f"{', '.join(CASES)}; valid variants: stable, naive")
    xs = sweep_grid(**grid) if isinstance(grid, dict) else sweep_grid() if grid is None else \
        np.asarray(grid, dtype=float).ravel()
    if not np.all(np.isfinite(xs)):
        raise ValueError("every grid point must be finite (the sweep differentiates at each one)")
    have, skipped = _available(methods)
    rows = []
    for name in names:
        case = CASES[name]
        exact_v, exact_d = _exact(case, xs, digits)
        for method in have:
            step = (thin or {}).get(method, 1)
            for variant in variants:
                for i in range(0, len(xs), step):
                    rows += _rows(case, variant, method, xs[i], exact_v[i], exact_d[i])
    df = pd.DataFrame(rows)
    df.attrs["skipped"] = skipped
    return df


def value_is_f(method: str) -> bool:
    """Whether a method's value is f(x) itself: a stencil without the offset 0 (central, central4,
    richardson) never evaluates f at x, so its value digits measure the stencil, not the primitive.

    >>> value_is_f("reverse"), value_is_f("forward"), value_is_f("central"), value_is_f("richardson")
    (True, True, False, False)
    """
    from . import finite_differences as fd

    if method == "richardson":
        return False
    stencil = fd.STENCILS.get(method)
    return stencil is None or 0 in stencil.offsets


def _why_nonfinite(case: Case, variant: str, method: str) -> str:
    """Why a result is NaN or inf: for SymPy, the expression it actually evaluates (it writes some stable forms
    as their closed form, exact in symbols but not in float64); else the float64 edge that was crossed."""
    if method == "symbolic":
        try:
            from .symbolic import symbols_like

            expr = case.fn(symbols_like(np.array([0.0])), variant == "stable")
            return (f"non-finite: SymPy evaluates {variant} {case.name} as {expr}, exact in symbols, whose float64 "
                    f"evaluation overflows past |x| = {EDGES['exp_overflow']:.2f} (SymPy has no stable form of it)")
        except Exception:  # noqa: BLE001  (the reason is a courtesy; the row is non-finite either way)
            pass
    return (f"non-finite: float64 overflow or underflow (exp overflows past |x| = {EDGES['exp_overflow']:.2f}, "
            f"underflows past {EDGES['exp_underflow']:.2f})")


def _first_sentence(text: str, limit: int = 200) -> str:
    """The error's first sentence (what went wrong; the advice after it is the same at every x), whole words.

    >>> _first_sentence("FloatingPointError: f is nan at x, so the quotient is not a number. Pass a smaller h.")
    'FloatingPointError: f is nan at x, so the quotient is not a number.'
    """
    head = text.split(". ", 1)[0]
    head = head if head.endswith(".") or head == text else head + "."
    return head if len(head) <= limit else head[:limit].rsplit(" ", 1)[0] + " …"


def _rows(case: Case, variant: str, method: str, x: float, exact_v, exact_d) -> list[dict]:
    try:
        value, grad = _run(case, variant == "stable", method, x)
        status = "ok"
    except Exception as err:  # noqa: BLE001  (a method that fails at an input is a result of the study)
        value, grad, status = math.nan, math.nan, _first_sentence(f"{type(err).__name__}: {err}")
    out = []
    for quantity, computed, exact in (("value", value, exact_v), ("grad", grad, exact_d)):
        rel = _rel_error(computed, exact)
        lo, hi = case.domain.get(quantity, (-math.inf, math.inf))
        finite = bool(np.isfinite(computed))
        meaningful = quantity == "grad" or value_is_f(method)
        row_status = status if (finite or status != "ok") else _why_nonfinite(case, variant, method)
        out.append(dict(case=case.name, variant=variant, method=method, x=float(x), quantity=quantity,
                        computed=computed, exact=float(exact), rel_error=rel,
                        digits=correct_digits(rel) if meaningful else math.nan, meaningful=meaningful,
                        finite=finite, in_domain=bool(lo <= x <= hi), status=row_status))
    return out


def first_failures(df: pd.DataFrame, lost: Sequence[int] = (3, 8, 15)) -> pd.DataFrame:
    """Where each variant first loses k digits (and first goes non-finite), scanning outward from 0.

    For each (case, variant, method, quantity) and each side of 0, the input
    closest to 0 with ``digits < 16 - k`` (``x_lost_k``), and the one with a
    non-finite result (``x_nonfinite``); NaN where it never happens.  k = 3
    is the 1e-13 promise, 15 means at most one digit left.
    """
    rows = []
    for key, g in df.groupby(["case", "variant", "method", "quantity"], sort=False):
        for side, part in (("negative", g[g.x < 0].sort_values("x", ascending=False)),
                           ("positive", g[g.x >= 0].sort_values("x"))):
            row = dict(zip(["case", "variant", "method", "quantity"], key), side=side)
            for k in lost:
                hit = part.x[part.digits < 16 - k]
                row[f"x_lost_{k}"] = float(hit.iloc[0]) if len(hit) else math.nan
            hit = part.x[~part.finite]
            row["x_nonfinite"] = float(hit.iloc[0]) if len(hit) else math.nan
            rows.append(row)
    return pd.DataFrame(rows)
