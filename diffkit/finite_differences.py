"""Finite differences: every classic stencil, steps from the error model, exact step sizes.

One table, :data:`STENCILS`, holds each real stencil as offsets (in units of
the step h) and weights; the derivative estimate is ``sum_j w_j f(theta + o_j h e_i) / h``.
Everything else is *derived* from that table, never restated:

- the order p: the first power whose Taylor moment ``sum_j w_j o_j^(p+1)`` is nonzero;
- the truncation bound ``T h^p |f^(p+1)|`` with ``T = |sum_j w_j o_j^(p+1)| / (p+1)!``;
- the round-off bound ``R eps |f| / h`` with ``R = sum_j |w_j|`` (each f value carries
  a relative error of about eps);
- the default step, the minimiser of their sum with ``|f| ~ |f^(p+1)|``:
  ``h* = (R eps / (p T))^(1/(p+1))``, i.e. 2 eps^(1/2) (forward, backward),
  (3 eps)^(1/3) (central), (11.25 eps)^(1/5) (central4), (360 eps)^(1/5) (richardson).

Conventions (documented once, used by every method):

- **relative steps** (``relative=True``, the default): component i is perturbed by
  ``h_i = h * max(|theta_i|, 1)``, so a step is a relative change for large
  parameters and an absolute one near zero.  ``relative=False`` uses ``h`` as given.
  ``h`` may be a scalar or an array of theta's shape.
- **exact steps**: the divisor is the representable perturbation ``(theta_i + h_i) - theta_i``,
  not the h that was asked for (Sterbenz: that subtraction is exact).  The other
  stencil points ``theta_i + o_j h`` are exact too, except when they cross into a
  coarser binade, where the misplacement (half an ulp of theta_i) is below the
  round-off term already in the bound.
- **values**: forward and backward evaluate f(theta) itself; central and richardson
  never do, so their reported value is the stencil's own estimate of f(theta) (the
  mean of a symmetric pair, O(h^2) accurate for central; central4 and
  richardson extrapolate two pairs to O(h^4)).  The evaluation counts are exactly the stencil's points.
- **complex step** ``Im f(theta + i h e_i) / h``: no subtraction, so no round-off growth;
  f must be analytic and written against :func:`diffkit.namespace`, which gives
  the complex namespace (:data:`diffkit.backends.COMPLEX`: abs, maximum, minimum,
  max, where and comparisons act on the real part; relu and exact kinks raise
  :class:`~diffkit.backends.NotAnalyticError`).

>>> import numpy as np, diffkit as dk
>>> r = dk.gradient(lambda t: t[0] ** 3 + t[1], np.array([2.0, 5.0]), method="central")
>>> np.round(r.grad, 8).tolist(), r.cost.evaluations
([12.0, 1.0], 4)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable

import numpy as np

from .backends import ComplexStep, NotAnalyticError
from .methods import MethodOutput, as_theta, check_scalar, default_name, guard, register_method

__all__ = ["STENCILS", "Stencil", "steps", "stencil_gradient", "complex_step_gradient", "richardson_gradient",
           "directional_derivative", "fd_jvp", "optimal_step", "batched_function"]

EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Stencil:
    """Offsets (units of h) and exact rational weights of a first-derivative formula."""

    name: str
    offsets: tuple[int, ...]
    weights: tuple[Fraction, ...]

    @property
    def order(self) -> int:
        return _order(self.offsets, self.weights)

    @property
    def truncation(self) -> float:
        """T in the truncation bound T h^p |f^(p+1)|."""
        p = self.order
        return abs(float(sum(w * Fraction(o) ** (p + 1) for o, w in zip(self.offsets, self.weights)))) / math.factorial(p + 1)

    @property
    def roundoff(self) -> float:
        """R in the round-off bound R eps |f| / h."""
        return float(sum(abs(w) for w in self.weights))

    @property
    def default_step(self) -> float:
        """Minimiser of T h^p + R eps / h (both derivatives of f taken of order 1)."""
        p = self.order
        return (self.roundoff * EPS / (p * self.truncation)) ** (1.0 / (p + 1))


def _order(offsets, weights) -> int:
    moments = [sum(w * Fraction(o) ** k for o, w in zip(offsets, weights)) for k in range(len(offsets) + 2)]
    if moments[0] != 0 or moments[1] != 1:
        raise ValueError(f"stencil weights {weights} at offsets {offsets} do not estimate a first derivative")
    return next(k - 1 for k in range(2, len(moments)) if moments[k] != 0)


def _richardson_stencil(levels: int, ratio: int = 2) -> Stencil:
    """Central differences at h, h/ratio, ... extrapolated: itself a linear stencil (offsets in units of h/ratio^(L-1))."""
    unit = ratio ** (levels - 1)
    rows = [{(-unit // ratio ** k): Fraction(-ratio ** k, 2 * unit), (unit // ratio ** k): Fraction(ratio ** k, 2 * unit)}
            for k in range(levels)]  # D_k as weights on integer offsets of the finest step
    for j in range(1, levels):  # Richardson tableau on the weights: eliminate the h^(2j) term
        factor = Fraction(ratio) ** (2 * j)
        rows = [{o: (factor * new.get(o, 0) - old.get(o, 0)) / (factor - 1) for o in set(old) | set(new)}
                for old, new in zip(rows[:-1], rows[1:])]
    weights = {o: w for o, w in rows[0].items() if w != 0}
    offsets = tuple(sorted(weights))
    # rescale so that h is the coarsest step (offsets +-1 for the first level)
    return Stencil(f"richardson{levels}", tuple(Fraction(o, unit) for o in offsets),
                   tuple(weights[o] * unit for o in offsets))


F = Fraction
STENCILS: dict[str, Stencil] = {s.name: s for s in (
    Stencil("forward", (0, 1), (F(-1), F(1))),
    Stencil("backward", (-1, 0), (F(-1), F(1))),
    Stencil("central", (-1, 1), (F(-1, 2), F(1, 2))),
    Stencil("central4", (-2, -1, 1, 2), (F(1, 12), F(-8, 12), F(8, 12), F(-1, 12))),
)}
RICHARDSON_LEVELS = 2  # h and h/2: 4th order, the level the issue asks for; more levels are an option
MAX_RICHARDSON_LEVELS = 12  # the finest step is h / 2^11: past that round-off (eps / step) dominates any gain
RATIO = 2  # halving the step: the classic choice, and every offset stays an exact binary fraction of h

# Complex step: truncation h^2 |f'''| / 6, round-off eps |f'| independent of h.  Any h with h^2 << eps
# is at the floor; h = eps keeps h^2 |f'''| far below round-off and h |f'| far above underflow (1e-308).
COMPLEX_STEP = EPS


def optimal_step(method: str, levels: int = RICHARDSON_LEVELS) -> float:
    """The error model's optimal step for ``method`` (before scaling by max(|theta_i|, 1)).

    >>> [round(float(optimal_step(m) / np.finfo(float).eps ** e), 4) for m, e in [("forward", 1 / 2), ("central", 1 / 3)]]
    [2.0, 1.4422]
    """
    if method == "complex_step":
        return COMPLEX_STEP
    return stencil_for(method, levels).default_step


def stencil_for(method: str, levels: int = RICHARDSON_LEVELS) -> Stencil:
    if method == "richardson":
        return _richardson_stencil(levels, RATIO)
    if method not in STENCILS:
        raise ValueError(f"unknown finite-difference method {method!r}; valid: "
                         f"{', '.join([*STENCILS, 'richardson', 'complex_step'])}")
    return STENCILS[method]


# --- steps ------------------------------------------------------------------------------------

def steps(theta: np.ndarray, h: Any, relative: bool, default: float) -> np.ndarray:
    """Validated per-component steps: ``h`` (or ``default``) times max(|theta_i|, 1) when relative."""
    theta = np.asarray(theta, dtype=float)
    if not isinstance(relative, (bool, np.bool_)):
        raise TypeError(f"relative must be True or False; got {type(relative).__name__} {relative!r:.40}")
    if isinstance(h, (str, bytes, bool, np.bool_)):
        raise TypeError(f"h must be a step size (a number > 0, or an array of theta's shape) or None; got "
                        f"{type(h).__name__} {h!r:.40}")
    try:
        raw = np.asarray(default if h is None else h, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"h must be a step size (a number > 0, or an array of theta's shape) or None; got "
                        f"{type(h).__name__} {h!r:.40}, which is not numbers") from None
    if raw.ndim and raw.shape != theta.shape:
        raise ValueError(f"step array h has shape {raw.shape}, but theta has shape {theta.shape}; pass a scalar h "
                         f"or one step per component (an array of theta's shape)")
    raw = np.broadcast_to(raw, theta.shape)
    bad = np.flatnonzero(~(np.isfinite(raw) & (raw > 0)))
    if bad.size:
        shown = ", ".join(f"{default_name(int(i), theta.shape)}: h={raw.flat[i]}" for i in bad[:5])
        raise ValueError(f"every step h must be finite and > 0; got {shown}"
                         f"{f' and {bad.size - 5} more' if bad.size > 5 else ''}")
    with np.errstate(over="ignore"):
        out = raw * np.maximum(np.abs(theta), 1.0) if relative else raw.copy()
    too_big = np.flatnonzero(~np.isfinite(theta + out) | ~np.isfinite(theta - out))
    if too_big.size:
        i = int(too_big[0])
        raise ValueError(f"step h={raw.flat[i]:g} at {default_name(i, theta.shape)} takes theta out of the float64 "
                         f"range (theta +- h overflows); pass a smaller h (a relative step such as 1e-6)")
    return out


def check_finite_values(values: dict, h_eff: np.ndarray, method: str) -> None:
    """Refuse a gradient built from non-finite f values: it would be NaN or inf without saying why."""
    for o, vals in values.items():
        bad = np.flatnonzero(~np.isfinite(vals))
        if bad.size:
            i = int(bad[0])
            where = "theta" if o == 0 else f"theta {'+' if o > 0 else '-'} {'' if abs(o) == 1 else f'{abs(float(o)):g} '}h e_i"
            raise FloatingPointError(
                f"{method}: f is {vals[i]} at {where} for {default_name(i, h_eff.shape)} (h={h_eff.flat[i]:.3g}; "
                f"{bad.size} such point(s)), so the difference quotient is not a number. The step may be too "
                f"large (f overflows there) or f is not finite near theta; pass a smaller h, or use "
                f"method='reverse'")


def exact_steps(theta: np.ndarray, h: np.ndarray, offsets) -> np.ndarray:
    """The representable steps (theta + h) - theta; refuse a step that leaves a stencil point at theta."""
    h_eff = (theta + h) - theta
    moved = np.ones(theta.shape, dtype=bool)
    for o in offsets:
        if o != 0:
            moved &= (theta + float(o) * h_eff) != theta
    bad = np.flatnonzero(~moved | (h_eff <= 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"step too small to change theta: theta + h == theta at {default_name(i, theta.shape)} "
            f"(theta={theta.flat[i]!r}, h={h.flat[i]!r}; {bad.size} component(s) affected). The smallest step that "
            f"moves it is {np.spacing(abs(theta.flat[i])):.3g}; pass a larger h (or relative=True)")
    return h_eff


# --- the methods --------------------------------------------------------------------------------

def _evaluate(f: Callable, theta: np.ndarray, h_eff: np.ndarray, offsets, batch: int | None = None) -> dict:
    """f at theta + o h_i e_i for each offset o and component i: {o: array of values} (o = 0 once).

    With ``batch``, f is the batched form (see :func:`batched_function`) and
    gets up to ``batch`` points per call, stacked along a new first axis.
    """
    if batch:
        return _evaluate_batched(f, theta, h_eff, offsets, batch)
    values = {}
    flat = theta.reshape(-1)
    for o in offsets:
        if o == 0:
            values[o] = np.full(theta.size, _real(f(theta)))
            continue
        vals = np.empty(theta.size)
        for i in range(theta.size):
            x = flat.copy()
            x[i] = flat[i] + float(o) * h_eff.flat[i]
            vals[i] = _real(f(x.reshape(theta.shape)))
        values[o] = vals
    return values


def batched_function(f: Callable) -> Callable:
    """The batched form of ``f``: ``f.batched`` if f declares one, else an error saying how to declare it.

    A function declares that it takes a batch of thetas by carrying an
    attribute ``batched``: a function of an array of shape (k, *theta.shape)
    returning the k values, shape (k,).
    """
    fn = getattr(f, "fn", f)  # unwrap dk.gradient's evaluation counter
    batched = getattr(fn, "batched", None)
    if not callable(batched):
        raise ValueError("batch= needs a function that takes a batch of thetas: set f.batched to a function of an "
                         "array of shape (k, *theta.shape) returning shape (k,), or leave batch=None")
    return batched


def _evaluate_batched(batched: Callable, theta, h_eff, offsets, batch: int) -> dict:
    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be a positive integer (thetas per call) or None; got {batch!r}")
    values, P, flat = {}, theta.size, theta.reshape(-1)
    for o in offsets:
        if o == 0:
            values[o] = np.full(P, _real(np.reshape(batched(theta[None].copy()), (1,))[0]))  # its own copy
            continue
        vals = np.empty(P)
        for start in range(0, P, batch):
            idx = np.arange(start, min(start + batch, P))
            X = np.repeat(flat[None], idx.size, axis=0)
            X[np.arange(idx.size), idx] = flat[idx] + float(o) * h_eff.reshape(-1)[idx]
            out = np.asarray(batched(X.reshape((idx.size,) + theta.shape)), dtype=float)
            if out.shape != (idx.size,):
                raise ValueError(f"f.batched returned shape {out.shape} for {idx.size} thetas; expected ({idx.size},)")
            vals[idx] = out
        values[o] = vals
    return values


def _evaluations(offsets, P: int) -> int:
    return P * sum(1 for o in offsets if o != 0) + (1 if 0 in offsets else 0)


def _real(out) -> float:
    return float(np.reshape(np.asarray(out, dtype=float), ()))


def _combine(stencil: Stencil, values: dict, h_eff: np.ndarray) -> np.ndarray:
    total = sum(float(w) * values[o] for o, w in zip(stencil.offsets, stencil.weights))
    return (total / h_eff.reshape(-1)).reshape(h_eff.shape)


def _value(values: dict, h_eff: np.ndarray) -> float:
    """f(theta) if it was evaluated, else the stencil's estimate at the component with the smallest step.

    A symmetric pair's mean is f + O(h^2); with two pairs (central4,
    richardson), extrapolating the two means removes the h^2 term: f + O(h^4).
    """
    if 0 in values:
        return float(values[0][0])
    i = int(np.argmin(h_eff))
    pairs = sorted(o for o in values if o > 0)[:2]
    means = [(values[o][i] + values[-o][i]) / 2 for o in pairs]
    if len(means) == 1:
        return float(means[0])
    r2 = float(Fraction(pairs[1]) / Fraction(pairs[0])) ** 2
    return float((r2 * means[0] - means[1]) / (r2 - 1))


def stencil_gradient(f: Callable, theta: np.ndarray, stencil: Stencil, h=None, relative: bool = True,
                     batch: int | None = None):
    """Gradient by one real stencil; returns (value, grad, h_eff)."""
    h_eff = exact_steps(theta, steps(theta, h, relative, stencil.default_step), stencil.offsets)
    with np.errstate(over="ignore", invalid="ignore"):
        values = _evaluate(batched_function(f) if batch else f, theta, h_eff, stencil.offsets, batch)
    check_finite_values(values, h_eff, stencil.name)
    return _value(values, h_eff), _combine(stencil, values, h_eff), h_eff


def _counters(h_eff: np.ndarray, stencil_name: str) -> dict:
    return {"stencil": stencil_name, "h_min": float(h_eff.min()), "h_max": float(h_eff.max())}


def _register_stencil(name: str, summary: str) -> None:
    stencil = STENCILS[name]

    def run(f, theta, *, h=None, relative: bool = True, batch: int | None = None) -> MethodOutput:
        value, grad, h_eff = stencil_gradient(f, theta, stencil, h, relative, batch)
        counters = _counters(h_eff, name)
        if not batch:
            return MethodOutput(value, grad, counters)
        n = _evaluations(stencil.offsets, theta.size)
        counters["array_calls"] = sum(-(-theta.size // batch) if o else 1 for o in stencil.offsets)
        return MethodOutput(value, grad, counters, evaluations=n)
    run.__name__ = f"{name}_gradient"
    run.__doc__ = (f"{summary}.  ``h`` scalar or per component (default {stencil.default_step:.3g}); ``relative`` "
                   f"scales it; ``batch=k`` evaluates k thetas per call of ``f.batched`` (see batched_function).")
    register_method(name, "numeric", summary)(run)


_register_stencil("forward", "forward differences (f(t+h e_i) - f(t)) / h, O(h), P+1 evaluations")
_register_stencil("backward", "backward differences (f(t) - f(t-h e_i)) / h, O(h), P+1 evaluations")
_register_stencil("central", "central differences (f(t+h e_i) - f(t-h e_i)) / 2h, O(h^2), 2P evaluations")
_register_stencil("central4", "5-point central stencil, O(h^4), 4P evaluations")


@register_method("complex_step", "numeric", "complex step Im f(t + i h e_i) / h, O(h^2) with no cancellation, "
                                            "P evaluations (analytic f only)")
def complex_step_gradient(f, theta, *, h=None, relative: bool = True) -> MethodOutput:
    """Complex step: f must be analytic and use :func:`diffkit.namespace`; relu raises NotAnalyticError."""
    hs = steps(theta, h, relative, COMPLEX_STEP)
    flat = theta.reshape(-1).astype(np.complex128)
    grad, value = np.empty(theta.size), None
    for i in range(theta.size):
        x = flat.copy()
        x[i] += 1j * hs.flat[i]
        out = _complex_out(f(x.reshape(theta.shape).view(ComplexStep)))  # (its comparisons: real parts)
        if not (np.isfinite(out.real) and np.isfinite(out.imag)):
            raise FloatingPointError(f"complex_step: f is {out} at theta + i h e_i for {default_name(i, theta.shape)} "
                                     f"(h={hs.flat[i]:.3g}), so the derivative is not a number; f is not finite "
                                     f"near theta (use method='reverse')")
        value = out.real if value is None else value
        grad[i] = out.imag / hs.flat[i]
    return MethodOutput(value, grad.reshape(theta.shape), {"h_min": float(hs.min()), "h_max": float(hs.max())})


def _complex_out(out) -> complex:
    arr = np.asarray(out)
    if arr.dtype.kind != "c":
        raise NotAnalyticError(
            f"f returned a real {arr.dtype} value for a complex input, so the complex step sees no derivative: "
            f"f drops the imaginary part somewhere (float(), np.real, astype(float), or a numpy function called "
            f"directly instead of through dk.namespace(theta)). Use method='central' or 'reverse'")
    return complex(np.reshape(arr, ())) if arr.size == 1 else complex(arr.reshape(-1)[0])


@register_method("richardson", "numeric", "central differences at h, h/2 (more with levels=) extrapolated, "
                                          "with a per-component error estimate; 2P x levels evaluations")
def richardson_gradient(f, theta, *, h=None, relative: bool = True, levels: int = RICHARDSON_LEVELS) -> MethodOutput:
    """Richardson extrapolation of central differences; ``counters["error_estimate"]`` per component.

    The tableau T[k][j] (step h/2^k, order 2j+2) gives the estimate T[L-1][L-1];
    its error estimate is the larger of its distances to T[L-1][L-2] and
    T[L-2][L-2] (the two estimates of one order lower, as in Numerical Recipes'
    dfridr), plus the round-off bound R eps |f| / h of the combined stencil.
    """
    if isinstance(levels, (bool, np.bool_)) or not isinstance(levels, (int, np.integer)) or not \
            2 <= levels <= MAX_RICHARDSON_LEVELS:
        raise ValueError(f"levels must be an integer from 2 to {MAX_RICHARDSON_LEVELS} (h, h/2, ... h/2^(levels-1); "
                         f"finer steps drown in round-off); got {levels!r}")
    stencil = _richardson_stencil(int(levels), RATIO)
    h_eff = exact_steps(theta, steps(theta, h, relative, stencil.default_step), stencil.offsets)
    central = STENCILS["central"]
    rows, values = [], {}
    for k in range(levels):
        scaled = h_eff / RATIO ** k  # dividing by a power of two: exact
        with np.errstate(over="ignore", invalid="ignore"):
            level = _evaluate(f, theta, scaled, central.offsets)
        check_finite_values(level, scaled, "richardson")
        values.update({Fraction(o, RATIO ** k): v for o, v in level.items()})
        rows.append([_combine(central, level, scaled).reshape(-1)])
        for j in range(1, k + 1):
            factor = float(RATIO ** (2 * j))
            rows[k].append((factor * rows[k][j - 1] - rows[k - 1][j - 1]) / (factor - 1))
    best = rows[-1][-1]
    value = _value(values, h_eff)
    spread = np.maximum(np.abs(best - rows[-1][-2]), np.abs(best - rows[-2][-1]))
    estimate = spread + stencil.roundoff * EPS * max(abs(value), np.finfo(float).tiny) / h_eff.reshape(-1)
    counters = {**_counters(h_eff, stencil.name), "levels": int(levels),
                "error_estimate": estimate.reshape(theta.shape).tolist(),
                "error_estimate_max": float(estimate.max()), "error_estimate_median": float(np.median(estimate))}
    return MethodOutput(value, best.reshape(theta.shape), counters)


# --- directional derivatives and Jacobian-vector products ----------------------------------------

def fd_jvp(f: Callable, theta: Any, v: Any, method: str = "central", h: float | None = None,
        relative: bool = True) -> np.ndarray:
    """Jacobian-vector product J(theta) v of a scalar- or vector-valued f, by one stencil along v.

    The step along v is ``t = h * max(max|theta|, 1) / max|v|`` when ``relative``
    (``h`` defaults to the method's optimal step), so the largest coordinate
    moves by a relative h.  ``method`` is ``forward``, ``backward``, ``central``,
    ``central4``, ``richardson`` (its combined stencil, no error estimate) or
    ``complex_step``.  Costs: the stencil's points (2 for central, 1 for the complex step).

    >>> import numpy as np
    >>> f = lambda t: np.array([t[0] * t[1], np.sin(t[0])])
    >>> np.round(fd_jvp(f, np.array([1.0, 2.0]), np.array([1.0, 0.0])), 8).tolist()     # (t1, cos t0)
    [2.0, 0.54030231]
    """
    if not callable(f):
        raise TypeError(f"f must be a function of theta; got {type(f).__name__} {f!r:.60}")
    theta, v = as_theta(theta), as_theta(v, "v")
    f = guard(f)  # each call gets its own theta
    if not isinstance(method, str) or method not in (*STENCILS, "richardson", "complex_step"):
        raise ValueError(f"unknown method {method!r} for a directional derivative; valid: "
                         f"{', '.join([*STENCILS, 'richardson', 'complex_step'])}")
    if not isinstance(relative, (bool, np.bool_)):
        raise TypeError(f"relative must be True or False; got {type(relative).__name__} {relative!r:.40}")
    if v.shape != theta.shape:
        raise ValueError(f"direction v has shape {v.shape}, but theta has shape {theta.shape}; they must match")
    if not np.all(np.isfinite(v)) or not np.any(v):
        raise ValueError("direction v must be finite and not all zero")
    if h is not None and (isinstance(h, (bool, str, bytes)) or not isinstance(h, (int, float, np.number)) or
                          not (np.isfinite(h) and h > 0)):
        raise ValueError(f"h must be one finite number > 0 for a directional derivative; got {h!r}")
    step = optimal_step(method) if h is None else float(h)
    t = step * max(float(np.max(np.abs(theta))), 1.0) / float(np.max(np.abs(v))) if relative else step
    if method == "complex_step":
        out = np.asarray(f((theta + 1j * t * v).view(ComplexStep)))
        if out.dtype.kind != "c":
            _complex_out(out)
        return np.imag(out) / t
    stencil = stencil_for(method)
    total = 0.0
    for o, w in zip(stencil.offsets, stencil.weights):
        point = theta + float(o) * t * v
        if o != 0 and np.array_equal(point, theta):
            raise ValueError(f"step too small to change theta along v (t={t:.3g}); pass a larger h")
        total = total + float(w) * np.asarray(f(point), dtype=float)
    return total / t


def directional_derivative(f: Callable, theta: Any, v: Any, method: str = "central", h: float | None = None,
                           relative: bool = True) -> float:
    """The derivative of a scalar f at theta along v, grad f . v, from one stencil along v (see :func:`fd_jvp`).

    >>> import numpy as np
    >>> round(directional_derivative(lambda t: t[0] ** 2 + 3 * t[1], np.array([1.0, 1.0]), np.array([1.0, 1.0])), 8)
    5.0
    """
    if not callable(f):
        raise TypeError(f"f must be a function of theta; got {type(f).__name__} {f!r:.60}")

    def scalar_f(x):
        out = f(x)
        check_scalar(out)
        return np.reshape(out, ())
    return float(np.reshape(fd_jvp(scalar_f, theta, v, method, h, relative), ()))

