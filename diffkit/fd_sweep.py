"""The step-size study: error against h for every finite-difference method, with the error model beside it.

:func:`step_sweep` differentiates one component (or all, or their norm) at
each step of a grid, measures the error against the mpmath reference, and
puts the error model's truncation and round-off bounds next to it; plotting
``error`` against ``h`` per method gives the V-curve.  :func:`baydin_figure3`
runs it on the function of Baydin et al. (2018), Figure 3.

Bounds use the actual derivatives of f along each component, computed in
mpmath (``mpmath.diffs``, at 30 digits): for a stencil of order p,
``truncation = T h^p |f^(p+1)|`` and ``roundoff = R eps |f| / h`` with T and R
derived from the stencil's weights (:mod:`diffkit.finite_differences`); the
complex step has ``truncation = h^2 |f'''| / 6`` and ``roundoff = eps |f'|``.
The optimum ``h_opt`` minimises their sum; for the complex step, which has no
minimum, it is the largest h whose truncation bound is still below round-off.
For ``component="norm"`` the bounds are the 2-norms over components.
"""
from __future__ import annotations

from typing import Any

import mpmath
import numpy as np
import pandas as pd

from . import finite_differences as fd
from .backends import NotAnalyticError, to_mp
from .methods import resolve
from .api import gradient
from .reference import _scalar, reference as make_reference

__all__ = ["step_sweep", "sweep_summary"]

DEFAULT_METHODS = ("forward", "central", "central4", "complex_step", "richardson")
DEFAULT_STEPS = np.logspace(-16, 0, 65)  # 4 steps per decade over the whole float64 range of useful h
DERIVATIVE_DIGITS = 30  # the bounds need the derivatives to a few digits only; 30 is ample headroom
MAX_BOUND_COMPONENTS = 200  # mpmath derivatives cost ~10 evaluations of f per component


def _restrict(fn, theta: np.ndarray, i: int):
    """x -> f(theta with component i replaced by x[0]), for any backend's x."""
    def g(x):
        dtype = object if getattr(x, "dtype", None) == object else np.result_type(theta, x)  # complex step: complex
        full = np.array(theta, dtype=dtype)
        full.flat[i] = x[0]
        return fn(full)
    return g


def _derivatives(fn, theta: np.ndarray, i: int, order: int = 5) -> np.ndarray:
    """|d^k f / d theta_i^k| for k = 0..order, in mpmath."""
    with mpmath.workdps(DERIVATIVE_DIGITS):
        base = to_mp(theta)

        def g(x):
            full = base.copy()
            full.flat[i] = x
            return _scalar(fn(full))
        return np.array([float(abs(d)) for d in mpmath.diffs(g, mpmath.mpf(float(theta.flat[i])), order)])


def _all_derivatives(fn, arr, comps) -> dict:
    """Derivatives for the bounds; a function that mpmath cannot run gets none (the bound columns are nan)."""
    try:
        return {i: _derivatives(fn, arr, i) for i in comps}
    except (TypeError, NotImplementedError, AttributeError):
        return {}


def _bounds(method: str, h: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(truncation, roundoff, optimal h) for derivative magnitudes d[k] = |f^(k)|."""
    if method == "complex_step":
        trunc, rnd = h ** 2 * d[3] / 6, np.full_like(h, fd.EPS * d[1])
        h_opt = np.sqrt(6 * fd.EPS * d[1] / d[3]) if d[3] > 0 else np.inf
        return trunc, rnd, float(h_opt)
    s = fd.stencil_for(method)
    p = s.order
    M = d[p + 1] if p + 1 < len(d) else np.nan
    trunc, rnd = s.truncation * h ** p * M, s.roundoff * fd.EPS * d[0] / h
    h_opt = (s.roundoff * fd.EPS * d[0] / (p * s.truncation * M)) ** (1 / (p + 1)) if M > 0 else np.inf
    return trunc, rnd, float(h_opt)


def _reference_grad(f, theta, reference) -> np.ndarray:
    if reference is None:
        reference = make_reference(f, theta, digits=50, max_coordinates=0)
    grad = getattr(reference, "grad_mp", reference)
    grad = np.asarray(grad, dtype=object).reshape(theta.shape)
    return np.array([mpmath.mpf(g) if not isinstance(g, mpmath.mpf) else g for g in grad.flat], dtype=object)


def _steps(steps) -> np.ndarray:
    """The sweep's steps as a 1-D array of finite numbers > 0, or an error saying what they must be."""
    try:
        out = np.asarray(steps, dtype=float)
    except (TypeError, ValueError):
        out = None
    if isinstance(steps, (str, bytes)) or out is None or out.ndim != 1 or not out.size or \
            not (np.isfinite(out).all() and (out > 0).all()):
        raise ValueError(f"steps must be a non-empty list of step sizes h > 0 (e.g. [1e-2, 1e-4, 1e-6]); "
                         f"got {steps!r:.60}")
    return out


def step_sweep(f: Any, theta: Any = None, methods=DEFAULT_METHODS, steps=DEFAULT_STEPS, component: Any = None,
               reference: Any = None, relative: bool = True, bounds: bool = True) -> pd.DataFrame:
    """Error of each method at each step, against the reference, with the error model's bounds.

    ``component`` is an int (that component), ``None`` (every component, one
    row each) or ``"norm"`` (one row per method and step: 2-norm of the
    error vector).  ``reference`` is a :class:`~diffkit.reference.Reference`
    or an array of exact derivatives; by default ``dk.reference`` is computed
    once.  ``steps`` are the h passed to the methods (scaled by
    max(|theta_i|, 1) when ``relative``).  A step too small to move theta
    gives ``error = nan``; a method that cannot run on f (the complex step on
    relu) is left out and named in ``df.attrs["skipped"]``.

    Columns: method, h, component, error (absolute), rel_error,
    truncation_bound, roundoff_bound, h_opt.  ``df.attrs["h_opt"]`` maps each
    method to its optimum for the first component swept (or the norm).

    >>> import numpy as np, diffkit as dk
    >>> df = step_sweep(lambda t: dk.namespace(t).exp(t[0]), np.array([0.0]), methods=["central"], steps=[1e-3, 1e-5],
    ...                 reference=np.array([1.0]), component=0)
    >>> df[["h", "error"]].round(10).values.tolist()    # truncation h^2/6
    [[0.001, 1.667e-07], [1e-05, 0.0]]
    """
    fn, arr, names = resolve(f, theta)
    ref = _reference_grad(fn, arr, reference)
    comps = _components(component, arr.size)
    steps = _steps(steps)
    derivs = _all_derivatives(fn, arr, comps[:MAX_BOUND_COMPONENTS]) if bounds else {}
    scale = np.maximum(np.abs(arr), 1.0) if relative else np.ones_like(arr)  # the methods' step convention
    rows, skipped = [], {}
    for method in methods:
        try:
            grads = np.array([_component_grads(fn, arr, comps, method, h, relative) for h in steps])
        except NotAnalyticError as err:
            skipped[method] = str(err)
            continue
        errors = np.array([[float(abs(mpmath.mpf(g) - ref[i])) if np.isfinite(g) else np.nan
                            for g, i in zip(row, comps)] for row in grads])
        model = [_scaled_bounds(method, steps, derivs[i], scale.flat[i]) if i in derivs else _no_bounds(steps)
                 for i in comps]
        rows += _rows(method, steps, comps, errors, model, ref, component == "norm", names)
    df = pd.DataFrame(rows, columns=["method", "h", "component", "error", "rel_error", "truncation_bound",
                                     "roundoff_bound", "h_opt"])
    df.attrs["h_opt"] = {m: float(g["h_opt"].iloc[0]) for m, g in df.groupby("method", sort=False)}
    df.attrs["skipped"] = skipped
    return df


def _components(component, P: int) -> list[int]:
    if component is None or component == "norm":
        return list(range(P))
    if isinstance(component, (int, np.integer)) and -P <= component < P:
        return [int(component) % P]
    raise ValueError(f"component must be None, 'norm' or an integer index in [0, {P}); got {component!r}")


def _scaled_bounds(method, steps, d, scale):
    """Bounds at the steps actually taken (h * scale), optimum back in the units of h."""
    trunc, rnd, h_opt = _bounds(method, steps * scale, d)
    return trunc, rnd, h_opt / scale


def _no_bounds(steps):
    nan = np.full_like(steps, np.nan)
    return nan, nan, np.nan


def _component_grads(fn, arr, comps, method, h, relative) -> list[float]:
    if len(comps) == 1:  # one component: differentiate the 1-D restriction (2 evaluations, not 2P)
        i = comps[0]
        fn, arr = _restrict(fn, arr, i), arr.reshape(-1)[i:i + 1]
        comps = [0]
    try:
        g = gradient(fn, arr, method=method, h=h, relative=relative).grad.reshape(-1)
    except NotAnalyticError:  # a ValueError too, but it means "skip the method", not "skip this step"
        raise
    except ValueError as err:
        if "too small to change theta" not in str(err):
            raise
        return [np.nan] * len(comps)
    return [float(g[i]) for i in comps]


def _rows(method, steps, comps, errors, model, ref, norm, names) -> list[tuple]:
    refs = np.array([float(abs(ref[i])) for i in comps])
    if norm:
        trunc = np.sqrt(sum(m[0] ** 2 for m in model))
        rnd = np.sqrt(sum(m[1] ** 2 for m in model))
        e = np.sqrt(np.sum(errors ** 2, axis=1))
        h_opt = float(np.median([m[2] for m in model]))
        scale = float(np.sqrt(np.sum(refs ** 2))) or 1.0
        return [(method, h, "norm", e[k], e[k] / scale, trunc[k], rnd[k], h_opt) for k, h in enumerate(steps)]
    out = []
    for j, i in enumerate(comps):
        trunc, rnd, h_opt = model[j]
        scale = refs[j] or 1.0
        out += [(method, h, names(i), errors[k, j], errors[k, j] / scale, trunc[k], rnd[k], h_opt)
                for k, h in enumerate(steps)]
    return out


def sweep_summary(df: pd.DataFrame, window: int | None = None) -> pd.DataFrame:
    """Per method and component: the h at the minimum error, the minimum error, the theoretical optimum.

    Round-off error is effectively random, so the raw argmin on the noisy side
    of the V can land a step or two off; ``h_at_min_smoothed`` is the argmin of
    the geometric mean of the error over ``window`` neighbouring steps (by
    default the steps within half a decade either side: 5 on the default grid),
    the V's trend.
    """
    if window is None:
        hs = np.unique(df["h"].to_numpy())
        per_decade = (hs.size - 1) / max(np.log10(hs[-1] / hs[0]), 1.0) if hs.size > 1 else 1.0
        window = 2 * int(round(per_decade / 2)) + 1
    rows = []
    for (method, comp), g in df.groupby(["method", "component"], sort=False):
        g = g[np.isfinite(g["error"])]
        if not len(g):
            rows.append((method, comp, np.nan, np.nan, np.nan, np.nan))
            continue
        best = g.loc[g["error"].idxmin()]
        # errors of exactly 0 (the complex step) are clipped to the smallest positive double for the log
        logs = np.log10(np.maximum(g["error"].to_numpy(), np.finfo(float).tiny))
        trend = pd.Series(logs).rolling(window, center=True, min_periods=1).mean().to_numpy()
        rows.append((method, comp, best["h"], best["error"], g["h"].iloc[int(np.argmin(trend))], g["h_opt"].iloc[0]))
    return pd.DataFrame(rows, columns=["method", "component", "h_at_min", "min_error", "h_at_min_smoothed", "h_opt"])


