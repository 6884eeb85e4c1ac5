"""Jacobians of vector functions and second derivatives: ``dk.jacobian``, ``dk.hvp``, ``dk.hessian``.

Jacobian modes: ``"forward"`` (P JVPs, carried together: one pass of a batch
of tangents when P is small), ``"reverse"`` (one VJP per output: M sweeps of
one tape), ``"auto"`` (forward when outputs > inputs, reverse otherwise; the
choice is recorded on the result), ``"finite_difference"`` (central
differences along each input, ``dk.fd_jvp``) and ``"symbolic"`` (SymPy).

Hessian-vector products, four routes:

======================  ===========================================================
``forward_over_reverse``  ``dk.jvp`` of the reverse-mode gradient: one dual pass
                          over a tape (default; exact)
``reverse_over_reverse``  ``dk.vjp`` of the gradient: the tape records its own
                          backward sweep (rules are written against ``xp``); exact
``finite_difference``     central differences of the reverse gradient along v;
                          its error model predicts ~10 digits (``predicted_digits``)
``symbolic``              SymPy: the gradient of grad f . v, small problems only
======================  ===========================================================

>>> import numpy as np, diffkit as dk
>>> f = lambda t: t[0] ** 2 * t[1]
>>> dk.hvp(f, np.array([1.0, 3.0]), np.array([1.0, 0.0])).hvp.tolist()     # H e0 = (2 t1, 2 t0)
[6.0, 2.0]
>>> J = dk.jacobian(lambda t: dk.namespace(t).stack([t[0] * t[1], t[0], t[1]]), np.array([2.0, 5.0]))
>>> J.mode, J.jacobian.tolist()
('forward', [[5.0, 2.0], [1.0, 0.0], [0.0, 1.0]])
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .forward import gradient_of  # first: reverse and forward_ad register before the FDs
from .finite_differences import EPS, fd_jvp, optimal_step, stencil_for  # noqa: I001
from .methods import resolve
from .tape import jvp, vjp
from .tape.jacobian import ad_jacobian, basis as _basis, batch_size as _batch_size, forward_columns

__all__ = ["jacobian", "hvp", "hessian", "JacobianResult", "HVPResult", "HessianResult", "JACOBIAN_MODES",
           "HVP_MODES"]

JACOBIAN_MODES = ("auto", "forward", "reverse", "finite_difference", "symbolic")
HVP_MODES = ("forward_over_reverse", "reverse_over_reverse", "finite_difference", "symbolic")


@dataclass
class JacobianResult:
    """``jacobian`` has shape ``value.shape + theta.shape``; ``mode`` is the mode that ran (auto resolved)."""

    value: np.ndarray
    jacobian: np.ndarray
    mode: str
    requested: str
    passes: int
    wall_s: float


@dataclass
class HVPResult:
    """``hvp`` = H(theta) v; ``grad`` the gradient at theta, which the AD and FD routes compute on the way
    (None for symbolic); ``passes`` counts JVP/VJP/gradient passes; ``counters`` what the route measured."""

    hvp: np.ndarray
    mode: str
    passes: int
    wall_s: float
    counters: dict = field(default_factory=dict)
    grad: np.ndarray | None = None


@dataclass
class HessianResult:
    """``hessian`` has shape ``theta.shape * 2`` (not symmetrised: its asymmetry is a check)."""

    hessian: np.ndarray
    mode: str
    passes: int
    wall_s: float
    counters: dict = field(default_factory=dict)


def _choose(mode: str, choices: tuple) -> None:
    if mode not in choices:
        raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(choices)}")


def _direction(v: Any, arr: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    if v.shape != arr.shape:
        raise ValueError(f"the direction v has shape {v.shape}; theta has shape {arr.shape}: they must match")
    if not np.all(np.isfinite(v)):
        raise ValueError("the direction v has non-finite entries")
    return v


def jacobian(f: Any, theta: Any = None, mode: str = "auto", batch: int | None = None) -> JacobianResult:
    """The Jacobian of a scalar- or vector-valued f; ``mode`` in :data:`JACOBIAN_MODES` (see the module doc).

    Forward mode carries ``batch`` tangents per pass (:mod:`diffkit.tape.batched`): by default all P inputs
    when P <= 64 (one pass, as ``jax.jacfwd``), else chunks of 64 or fewer; ``batch=1`` is one plain JVP per
    input.  ``passes`` counts the passes.
    """
    _choose(mode, JACOBIAN_MODES)
    fn, arr, _ = resolve(f, theta)
    start = time.perf_counter()
    value = np.asarray(fn(arr), dtype=float)
    P, M = arr.size, value.size
    chosen = mode
    if mode in ("auto", "forward", "reverse"):
        _, J, chosen, passes = ad_jacobian(fn, arr, value.shape, mode, batch)
    elif chosen == "finite_difference":
        plain = lambda t: np.asarray(fn(t), dtype=float)  # noqa: E731
        J = np.stack([fd_jvp(plain, arr, _basis(arr.shape, j)).reshape(M) for j in range(P)], axis=1)
        passes = 2 * P
    else:
        from .symbolic_higher import symbolic_jacobian
        J, passes = symbolic_jacobian(fn, arr).reshape(M, P), 1
    return JacobianResult(value, J.reshape(value.shape + arr.shape), chosen, mode, passes,
                          time.perf_counter() - start)


def _plain_gradient(fn: Callable) -> Callable:
    return lambda t: np.asarray(gradient_of(fn, t), dtype=float)


def _fd_hvp(fn: Callable, arr: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Central differences of the gradient along v, and the digits the error model predicts for them.

    Error model (relative to |Hv|): truncation T h^2 (third derivatives of order |Hv|) plus round-off
    R eps |g| / h of the gradient's values, at the step h that :func:`dk.fd_jvp` takes.  It is an order of
    magnitude: a gradient's own round-off accumulates over the function's operations (on the MLPs, the
    measured error is up to ~10x the prediction, i.e. one digit fewer).
    """
    grad = _plain_gradient(fn)
    Hv = fd_jvp(grad, arr, v, "central")
    stencil, h = stencil_for("central"), optimal_step("central")
    g = grad(arr)
    gmax = float(np.max(np.abs(g)))
    scale = max(float(np.max(np.abs(Hv))), np.finfo(float).tiny)
    predicted = stencil.truncation * h * h + stencil.roundoff * EPS * max(gmax / scale, 1.0) / h
    return Hv, g, {"step": h, "predicted_error": predicted, "predicted_digits": -math.log10(predicted)}


def _hvp_route(fn: Callable, arr: np.ndarray, v: np.ndarray, mode: str) -> tuple[np.ndarray, Any, int, dict]:
    """(H v, the gradient or None, passes, counters)."""
    if mode == "forward_over_reverse":  # the JVP's primal is the gradient itself; only the tangents it reads
        g, Hv = jvp(lambda t: gradient_of(fn, t), arr, v, lazy=True)
        return np.asarray(Hv, dtype=float), np.asarray(g, dtype=float), 1, {}
    if mode == "reverse_over_reverse":  # v^T H = (H v)^T: the Hessian of a scalar f is symmetric
        g, back = vjp(lambda t: gradient_of(fn, t), arr)
        return np.asarray(back(v), dtype=float), np.asarray(g, dtype=float), 1, {}
    if mode == "finite_difference":
        Hv, g, counters = _fd_hvp(fn, arr, v)
        return Hv, g, 3, counters
    from .symbolic_higher import symbolic_hvp
    return symbolic_hvp(fn, arr, v), None, 1, {}


def hvp(f: Any, theta: Any = None, v: Any = None, mode: str = "forward_over_reverse") -> HVPResult:
    """The Hessian-vector product H(theta) v of a scalar f by one of :data:`HVP_MODES`."""
    _choose(mode, HVP_MODES)
    fn, arr, _ = resolve(f, theta)
    if v is None:
        raise ValueError("v is required: the direction of the Hessian-vector product (theta's shape)")
    v = _direction(v, arr)
    start = time.perf_counter()
    Hv, g, passes, counters = _hvp_route(fn, arr, v, mode)
    return HVPResult(Hv.reshape(arr.shape), mode, passes, time.perf_counter() - start, counters,
                     None if g is None else g.reshape(arr.shape))


def hessian(f: Any, theta: Any = None, mode: str = "forward_over_reverse") -> HessianResult:
    """The full Hessian: P Hessian-vector products along the coordinates (symbolic: SymPy's Hessian).

    Forward over reverse carries the coordinate directions together, as forward-mode Jacobians do (all P <= 64
    in one pass; ``passes`` counts the passes).

    >>> import numpy as np, diffkit as dk
    >>> dk.hessian(lambda t: t[0] ** 3 + t[0] * t[1], np.array([2.0, 1.0])).hessian.tolist()
    [[12.0, 1.0], [1.0, 0.0]]
    """
    _choose(mode, HVP_MODES)
    fn, arr, _ = resolve(f, theta)
    start = time.perf_counter()
    if mode == "symbolic":
        from .symbolic_higher import symbolic_hessian
        return HessianResult(symbolic_hessian(fn, arr), mode, 1, time.perf_counter() - start)
    if mode == "forward_over_reverse":
        grad = lambda t: gradient_of(fn, t)  # noqa: E731
        batch = _batch_size(arr.size, arr.size, None)
        H = forward_columns(grad, arr, arr.size, batch, lazy=True)[1]
        return HessianResult(H.reshape(arr.shape * 2), mode, -(-arr.size // batch), time.perf_counter() - start)
    cols, passes, counters = [], 0, {}
    for j in range(arr.size):
        Hv, _, n, counters = _hvp_route(fn, arr, _basis(arr.shape, j), mode)
        cols.append(Hv.reshape(arr.size))
        passes += n
    H = np.stack(cols, axis=1).reshape(arr.shape * 2)
    return HessianResult(H, mode, passes, time.perf_counter() - start, counters)
