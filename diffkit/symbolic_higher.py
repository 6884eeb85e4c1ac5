"""Symbolic Jacobians, Hessian-vector products and Hessians: SymPy differentiates the same function twice.

The expression is built as for ``method="symbolic"`` (f run on an object
array of SymPy symbols), differentiated by SymPy (by SymEngine, its C++ core,
when installed: ~40x faster; no derivative rule of diffkit's table is involved)
and evaluated by a CSE'd lambdify of our own expressions, never a user string.  Expressions swell with every
derivative, so these are for small problems (tens of parameters).

>>> import numpy as np
>>> symbolic_hessian(lambda t: t[0] ** 2 * t[1], np.array([1.0, 3.0])).tolist()     # [[2 t1, 2 t0], [2 t0, 0]]
[[6.0, 2.0], [2.0, 0.0]]
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import sympy

from .sympy_backend import symbols_like, to_sympy

__all__ = ["symbolic_jacobian", "symbolic_hvp", "symbolic_hessian"]


def _expressions(fn: Callable, shape: tuple) -> tuple[list, list, tuple]:
    theta = symbols_like(np.empty(shape))
    out = np.asarray(fn(theta), dtype=object)
    symbols, outs = list(theta.flat), [to_sympy(e) for e in out.flat]
    se = _engine()
    if se is not None:
        symbols, outs = [se.sympify(s) for s in symbols], [se.sympify(e) for e in outs]
    return symbols, outs, out.shape


def _engine():
    """SymEngine (SymPy's C++ core, the optional ``fast`` extra) differentiates ~40x faster; else SymPy."""
    try:
        import symengine
    except ImportError:
        return None
    return symengine


def _diff(expr: Any, symbol: Any) -> Any:
    return expr.diff(symbol)


def _evaluate(symbols: list, exprs: list, theta: np.ndarray) -> np.ndarray:
    values = np.asarray(theta, dtype=float).ravel()
    se = _engine()
    if se is not None and exprs and isinstance(exprs[0], se.Basic):
        return np.asarray(se.Lambdify(symbols, exprs, cse=True)(values), dtype=float).ravel()
    run = sympy.lambdify(symbols, exprs, modules="numpy", cse=True)
    return np.array(run(*values.tolist()), dtype=float)


def symbolic_jacobian(fn: Callable, theta: Any) -> np.ndarray:
    """d f_i / d theta_j, shape ``f.shape + theta.shape``, from ``sympy.diff`` of each output."""
    theta = np.asarray(theta, dtype=float)
    symbols, outs, out_shape = _expressions(fn, theta.shape)
    exprs = [_diff(e, s) for e in outs for s in symbols]
    return _evaluate(symbols, exprs, theta).reshape(out_shape + theta.shape)


def _scalar_expression(fn: Callable, shape: tuple) -> tuple[list, Any]:
    symbols, outs, out_shape = _expressions(fn, shape)
    if len(outs) != 1:
        raise ValueError(f"f must return a scalar to have a Hessian; it returned shape {out_shape}")
    return symbols, outs[0]


def symbolic_hvp(fn: Callable, theta: Any, v: Any) -> np.ndarray:
    """H v as the gradient of the directional derivative grad f . v (P + P derivatives, not P^2)."""
    theta, v = np.asarray(theta, dtype=float), np.asarray(v, dtype=float)
    symbols, f = _scalar_expression(fn, theta.shape)
    directional = sum((_diff(f, s) * float(c) for s, c in zip(symbols, v.flat) if c), 0 * f)
    return _evaluate(symbols, [_diff(directional, s) for s in symbols], theta).reshape(theta.shape)


def symbolic_hessian(fn: Callable, theta: Any) -> np.ndarray:
    """The full Hessian, shape ``theta.shape * 2``: the upper triangle differentiated, mirrored."""
    theta = np.asarray(theta, dtype=float)
    symbols, f = _scalar_expression(fn, theta.shape)
    grad = [_diff(f, s) for s in symbols]
    P = len(symbols)
    pairs = [(i, j) for i in range(P) for j in range(i, P)]
    values = _evaluate(symbols, [_diff(grad[i], symbols[j]) for i, j in pairs], theta)
    H = np.empty((P, P))
    for (i, j), h in zip(pairs, values):
        H[i, j] = H[j, i] = h
    return H.reshape(theta.shape * 2)
