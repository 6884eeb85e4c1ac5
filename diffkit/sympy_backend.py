"""The SymPy backend of :func:`diffkit.namespace`: the same function on arrays of SymPy expressions.

A function written once against ``xp = dk.namespace(theta)`` runs unchanged
on an object array of SymPy symbols (``theta_0``, ``theta_1`` ..., all
``real=True``) and returns one SymPy expression.  Structural ops (reshape,
transpose, indexing, matmul, sum, concatenate ...) are numpy's own, which
handle object arrays; elementwise functions are SymPy's, lifted with
:func:`numpy.frompyfunc`.

Data enters as it is written in the function: a float64 array times a symbol
becomes ``sympy.Float`` with the float's exact binary value.
:func:`exactify` then turns every ``Float`` into the ``Rational`` of that same
binary value (``0.5 -> 1/2``, ``0.1 -> 3602879701896397/36028797018963968``)
for exact arithmetic.

Mappings (each is the textbook formula, which is what SymPy can
differentiate and print compactly; the max-shifted stable forms of
:mod:`diffkit.formulas` are equal as functions but would drag ``Max``,
``Abs`` and ``Piecewise`` into every derivative):

=======================  ==========================================================
op                       SymPy expression
=======================  ==========================================================
log1p(x), expm1(x)       ``log(1 + x)``, ``exp(x) - 1``
abs, maximum, minimum    ``Abs``, ``Max``, ``Min`` (``Max``/``Min`` differentiate to
                         ``Heaviside``, H(0) = 1/2: the tape's tie convention)
max(x, axis)             ``Max`` over the axis
where(c, x, y)           ``Piecewise((x, c), (y, True))`` (c may be symbolic)
sigmoid(x)               ``1 / (1 + exp(-x))``
log_sigmoid(x)           ``-log(1 + exp(-x))``
softplus(x)              ``log(1 + exp(x))``
relu(x)                  ``Piecewise((x, x >= 0), (0, True))``: relu'(0) = 1, as the tape
leaky_relu(x, a)         ``Piecewise((x, x >= 0), (a x, True))``
logsumexp(x)             ``log(sum(exp(x)))``
softmax, log_softmax     ``exp(x) / sum(exp(x))``, ``x - logsumexp(x)``
binary_cross_entropy     ``sum(softplus(z) - z y) / m``
softmax_cross_entropy    ``sum(logsumexp(z) - sum(y z)) / m``
=======================  ==========================================================

Numerically, a compiled ``exp`` of these overflows where the stable forms
would not (|x| > 709); exactly, they are the same functions.  theta is a
:class:`SymArray`, so ``theta >= 0`` gives an array of SymPy relationals
that ``where`` turns into ``Piecewise``.

>>> import numpy as np, diffkit as dk
>>> from diffkit.sympy_backend import symbols_like
>>> theta = symbols_like(np.zeros(2))
>>> dk.namespace(theta).name
'sympy'
>>> dk.nn.softplus(theta[0])
log(exp(theta_0) + 1)
"""
from __future__ import annotations

from typing import Any

import numpy as np
import sympy

from .formulas import batch_size
from .primitives.lazy import held

__all__ = ["SymArray", "symbols_like", "exactify", "to_sympy", "is_sympy", "matmul", "where", "reduce_with"]


def to_sympy(v: Any) -> sympy.Basic:
    """A number as a SymPy number (no string parsing: only numbers and SymPy objects are accepted)."""
    if isinstance(v, sympy.Basic):
        return v
    if isinstance(v, (bool, np.bool_)):
        return sympy.true if v else sympy.false
    if isinstance(v, (int, np.integer)):
        return sympy.Integer(int(v))
    if isinstance(v, (float, np.floating)):
        return sympy.Float(float(v))
    raise TypeError(f"cannot turn {type(v).__name__} {v!r} into a SymPy number; pass numbers or SymPy expressions")


def _sym(v: Any) -> sympy.Basic:
    return v if isinstance(v, sympy.Basic) else to_sympy(v)


def matmul(a, b):
    """One n-ary Add per entry (numpy's object matmul adds pairwise, re-sorting a growing Add k times)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim not in (1, 2) or b.ndim not in (1, 2) or a.shape[-1] != b.shape[0]:
        return np.matmul(a, b)  # batched stacks, or numpy's own shape error
    A, B = a.reshape(-1, a.shape[-1]), b.reshape(b.shape[0], -1)
    out = np.empty((A.shape[0], B.shape[1]), dtype=object)
    for i in range(A.shape[0]):
        for j in range(B.shape[1]):
            # unevaluated products: canonicalizing x * tanh(...) queries assumptions (0.4 ms a product)
            out[i, j] = sympy.Add(*[sympy.Mul(_sym(x), _sym(y), evaluate=False) for x, y in zip(A[i], B[:, j])])
    return out.reshape(a.shape[:-1] + b.shape[1:])[()]


def _add_reduce(x, axis=0, dtype=None, out=None, keepdims=False, where=True, **rest):
    # np.sum passes where=True; anything else (a mask, out=, initial=) goes to numpy's pairwise reduce
    if out is not None or rest or where is not True or x.size == 0:
        return np.add.reduce(x, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **rest)
    return _reduce_fn(lambda *v: sympy.Add(*map(_sym, v)), x, axis, keepdims)


_COMPARISONS = {np.greater_equal: lambda a, b: a >= b, np.greater: lambda a, b: a > b,
                np.less_equal: lambda a, b: a <= b, np.less: lambda a, b: a < b}


class SymArray(np.ndarray):
    """An object array of SymPy expressions: sums and matmul build one n-ary Add per entry (10x faster
    builds at P = 10^4), and comparisons give arrays of SymPy relationals (for ``where``).  Every other
    operation is numpy's own on object arrays."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [x.view(np.ndarray) if isinstance(x, SymArray) else x for x in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(x.view(np.ndarray) if isinstance(x, SymArray) else x for x in kwargs["out"])
        if ufunc is np.matmul and method == "__call__" and not kwargs:
            result = matmul(*plain)
        elif ufunc is np.add and method == "reduce":
            result = _add_reduce(*plain, **kwargs)
        elif ufunc in _COMPARISONS and method == "__call__" and not kwargs:
            result = np.frompyfunc(_COMPARISONS[ufunc], 2, 1)(*plain)
        else:
            result = getattr(ufunc, method)(*plain, **kwargs)
        if isinstance(result, np.ndarray) and result.dtype == object:
            return result.view(SymArray)
        return result


def symbols_like(theta: Any, prefix: str = "theta") -> np.ndarray:
    """A :class:`SymArray` of real SymPy symbols ``theta_0, theta_1 ...`` with theta's shape (flat numbering)."""
    shape = np.shape(theta)
    out = np.empty(shape, dtype=object)
    out.flat[:] = [sympy.Symbol(f"{prefix}_{i}", real=True) for i in range(int(np.prod(shape, dtype=int)))]
    return out.view(SymArray)


def exactify(expr: sympy.Basic) -> sympy.Basic:
    """Replace every Float by the Rational of its exact binary value; refuse inf/nan."""
    bad = [a for a in expr.atoms(sympy.Number) if not a.is_finite]
    if bad:
        raise ValueError(
            f"exact=True needs finite data, but the function's constants include {sorted(map(str, bad))}: "
            f"inf/nan have no exact rational value; remove them from the data or use exact=False")
    return expr.xreplace({f: sympy.Rational(f) for f in expr.atoms(sympy.Float)})


def is_sympy(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return x.dtype == object and x.size > 0 and isinstance(x.flat[0], sympy.Basic)
    return isinstance(x, sympy.Basic)


# --- the SymPy forms of the table's fused primitives (see the mapping in the module docstring) ---

_EXP, _LOG = held("exp"), held("log")


def _piecewise(c, x, y):
    if c is True or c is sympy.true or c is np.True_:
        return to_sympy(x)
    if c is False or c is sympy.false or c is np.False_:
        return to_sympy(y)
    return sympy.Piecewise((to_sympy(x), c), (to_sympy(y), True))


_where = np.frompyfunc(_piecewise, 3, 1)


def where(c, x, y):
    """``Piecewise((x, c), (y, True))`` per entry; ``c`` may hold SymPy relationals."""
    return _where(c, x, y)


def reduce_with(name: str, x, axis=None, keepdims=False):
    """``Max``/``Min`` (or any n-ary SymPy function) over an axis."""
    return _reduce_fn(getattr(sympy, name), x, axis, keepdims)


def _reduce_fn(fn, x, axis, keepdims):
    x = np.asarray(x, dtype=object)
    if axis is None:
        out = fn(*x.flat)
        return np.full((1,) * x.ndim, out, dtype=object) if keepdims else out
    out = np.apply_along_axis(lambda v: fn(*v), axis, x)
    return np.expand_dims(out, axis) if keepdims else out


_sigmoid = np.frompyfunc(lambda x: 1 / (1 + _EXP(-x)), 1, 1)
_softplus = np.frompyfunc(lambda x: _LOG(1 + _EXP(x)), 1, 1)
_log_sigmoid = np.frompyfunc(lambda x: -_LOG(1 + _EXP(-x)), 1, 1)
_exp = np.frompyfunc(_EXP, 1, 1)
_log = np.frompyfunc(_LOG, 1, 1)


def sigmoid(x):
    return _sigmoid(x)


def softplus(x):
    return _softplus(x)


def log_sigmoid(x):
    return _log_sigmoid(x)


def leaky(x, alpha):
    return np.frompyfunc(lambda v: sympy.Piecewise((v, v >= 0), (alpha * v, True)), 1, 1)(x)


def logsumexp(x, axis=-1, keepdims=False):
    return _log(np.sum(_exp(x), axis=axis, keepdims=keepdims))


def softmax(x, axis=-1):
    e = _exp(x)
    return e / np.sum(e, axis=axis, keepdims=True)


def _weight(y, z):
    # label times logit; 0 and 1 labels skip the product (SymPy's 0.0 * expr asks whether expr is finite,
    # over the whole expression: 9 of 12 s of an MLP build at P = 960); bool labels become 0/1
    if y == 0:
        return sympy.Integer(0)
    return z if y == 1 else float(y) * z


_weights = np.frompyfunc(_weight, 2, 1)


def binary_cross_entropy(z, y):
    return np.sum(_softplus(z) - _weights(y, z)) / batch_size(z)


def softmax_cross_entropy(z, y):
    return np.sum(logsumexp(z, -1) - np.sum(_weights(y, z), axis=-1)) / batch_size(z)
