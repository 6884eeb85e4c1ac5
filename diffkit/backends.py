"""Array namespaces: write a function once, run it on every numeric system.

A user function asks ``xp = dk.namespace(theta)`` and calls ``xp.exp``,
``xp.sum``... on whatever arrays it was given.  This is SymPy's lambdify
translation table run in reverse: instead of translating one expression into
many namespaces, each backend *supplies* a namespace with the same names.

Backends, in the order ``namespace`` tries them:

========  ===============================================  ==========================
backend   arrays                                           namespace
========  ===============================================  ==========================
tape      :class:`diffkit.tape.TArray`                     ``diffkit.tape.TAPE``
sympy     object arrays of SymPy expressions               ``diffkit.symbolic`` (later)
mpmath    object arrays of ``mpmath.mpf``                  :data:`MP`
complex   complex128 arrays (complex-step)                 :data:`COMPLEX`
numpy     everything else                                  ``numpy`` itself
========  ===============================================  ==========================

A backend may also provide *fused* versions of the stable activations and
costs in :mod:`diffkit.nn` (the tape does, so that each gets its own exact
derivative rule); see :attr:`Namespace.fused`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import mpmath
import numpy as np

__all__ = ["namespace", "register_backend", "Namespace", "MP", "COMPLEX", "NotAnalyticError"]


class NotAnalyticError(ValueError):
    """The complex step met a function that is not analytic where it was evaluated."""


@dataclass(frozen=True)
class Backend:
    name: str
    detect: Callable[[Any], bool]
    namespace: Any


_BACKENDS: list[Backend] = []


def register_backend(name: str, detect: Callable[[Any], bool], ns: Any, *, priority: int | None = None,
                     array_type: type | None = None) -> None:
    """Add a backend: ``detect(x)`` says whether ``x`` belongs to it, ``ns`` is its namespace.

    Backends registered earlier (or with a lower ``priority`` index) win when a
    call mixes arrays of several backends, so the tape outranks plain numpy.
    ``array_type``: the one type of the backend's arrays, when there is one;
    the top-priority backend is then found by a type check, not a scan.
    """
    backend = Backend(name, detect, ns)
    _BACKENDS[:] = [b for b in _BACKENDS if b.name != name]
    _BACKENDS.insert(len(_BACKENDS) if priority is None else priority, backend)
    _TYPES.pop(name, None)
    if array_type is not None:
        _TYPES[name] = array_type
    top = _BACKENDS[0]
    _TOP[:] = [_TYPES.get(top.name), top.namespace]


_TYPES: dict[str, type] = {}
_TOP: list = [None, None]  # [array type, namespace] of the highest-priority backend, if it has one type


def namespace(*arrays: Any) -> Any:
    """Return the array namespace that the given arrays belong to.

    Numpy float arrays (and Python numbers) give ``numpy`` itself; complex
    arrays give the complex-step namespace; tape arrays the tape's namespace;
    arrays of mpmath numbers the mpmath namespace.  When arrays of several
    backends are mixed (a constant numpy matrix times a tape array), the
    richer backend wins.

    >>> import numpy as np, diffkit as dk
    >>> dk.namespace(np.ones(3)) is np
    True
    >>> dk.namespace(np.ones(3) + 0j).name
    'complex'
    """
    top_type, top_namespace = _TOP
    plain = True
    for a in arrays:  # the common cases first: the top backend (the tape), and plain real numpy
        t = type(a)
        if t is top_type:
            return top_namespace
        if plain and not (t in _REAL or (t is np.ndarray and a.dtype.kind in "fiub")):
            plain = False
    if plain:
        return np
    for backend in _BACKENDS:
        for a in arrays:
            if backend.detect(a):
                return backend.namespace
    return np


_REAL = (float, int, bool, np.float64)


def _first_object(x: Any) -> Any:
    """The first element of an object array, or ``x`` itself for scalars."""
    if isinstance(x, np.ndarray):
        if x.dtype != object or x.size == 0:
            return None
        return x.flat[0]
    return x


class Namespace:
    """An array namespace assembled from a translation table.

    ``elementwise`` maps names such as ``"exp"`` to scalar functions, which are
    lifted to object arrays with :func:`numpy.frompyfunc`; structural
    operations (``reshape``, ``sum``, ``concatenate`` ...) come from numpy,
    which handles object arrays.  Asking for a name the backend lacks raises
    ``NotImplementedError`` naming the op and the backend.
    """

    _STRUCTURAL = (
        "reshape", "transpose", "concatenate", "stack", "where", "matmul", "sum", "mean", "max", "min",
        "maximum", "minimum", "shape", "ndim", "size", "swapaxes", "expand_dims", "squeeze",
        "broadcast_to", "outer", "dot", "ravel", "zeros_like", "ones_like", "asarray", "array",
        "moveaxis", "take", "vdot",
    )

    def __init__(self, name: str, elementwise: dict[str, Callable], *, scalar: Callable, overrides=None):
        self.name = name
        self.fused: dict[str, Callable] = {}
        self._scalar = scalar  # converts a Python/numpy number to this backend's scalar
        for op, fn in elementwise.items():
            setattr(self, op, self._lift(fn))
        for op in self._STRUCTURAL:
            setattr(self, op, getattr(np, op))
        for op, fn in (overrides or {}).items():
            setattr(self, op, fn)

    @staticmethod
    def _lift(fn: Callable) -> Callable:
        ufunc = np.frompyfunc(fn, 1, 1)
        return lambda x: ufunc(x)

    def zeros(self, shape, dtype=None):
        return np.full(shape, self._scalar(0), dtype=object)

    def ones(self, shape, dtype=None):
        return np.full(shape, self._scalar(1), dtype=object)

    def full(self, shape, value, dtype=None):
        return np.full(shape, self._scalar(value), dtype=object)

    def __getattr__(self, op: str):
        if op.startswith("__"):
            raise AttributeError(op)
        raise NotImplementedError(
            f"op {op!r} is not available in the {self.name} backend; "
            f"write it from the ops it has (see diffkit.backends) or use another method"
        )

    def __repr__(self) -> str:
        return f"<diffkit namespace {self.name!r}>"


# --- mpmath: arbitrary precision, the referee's number system -------------------------------

def _mp_bool(fn: Callable) -> Callable:
    ufunc = np.frompyfunc(fn, 1, 1)
    return lambda x: np.asarray(ufunc(x), dtype=bool)


MP = Namespace(
    "mpmath",
    {
        "exp": mpmath.exp, "log": mpmath.log, "log1p": mpmath.log1p, "expm1": mpmath.expm1,
        "sqrt": mpmath.sqrt, "tanh": mpmath.tanh, "sin": mpmath.sin, "cos": mpmath.cos,
        "abs": abs, "sign": mpmath.sign, "sinh": mpmath.sinh, "cosh": mpmath.cosh,
    },
    scalar=mpmath.mpf,
    overrides={
        "isfinite": _mp_bool(mpmath.isfinite),
        "isnan": _mp_bool(mpmath.isnan),
        "isinf": _mp_bool(mpmath.isinf),
        "inf": mpmath.inf,
        "pi": mpmath.pi,
    },
)


def to_mp(x: Any) -> np.ndarray:
    """Convert floats (exactly, bit for bit) to an object array of ``mpmath.mpf``."""
    arr = np.asarray(x, dtype=float)
    out = np.empty(arr.shape, dtype=object)
    out.flat[:] = [mpmath.mpf(float(v)) for v in arr.flat]
    return out


def _is_mp(x: Any) -> bool:
    return isinstance(_first_object(x), (mpmath.mpf, mpmath.mpc))


# --- complex step: numpy complex arrays, non-analytic ops by the real part -----------------

class _ComplexNamespace:
    """numpy for complex128 arrays, with the complex-step convention.

    The complex step needs an analytic function.  ``abs``, ``maximum``,
    ``minimum``, ``sign`` and comparisons act on the real part (the standard
    convention: each branch is analytic, and the branch is picked by the
    real value), so piecewise functions stay differentiable away from their
    kinks.  Exactly at a kink the one-sided derivatives differ and no
    convention can give the right answer, so the op raises
    :class:`NotAnalyticError`.  ReLU-type activations are rejected outright
    because the complex step is only meant for analytic functions.
    """

    name = "complex"

    def __init__(self):
        # The shared stable formulas write sigmoid and softplus with abs/maximum, whose kink check would refuse
        # x.real == 0 although both functions are analytic there; these fused forms pick one of two analytic
        # branches (the same function rearranged) by the sign of the real part, with no kink.
        self.fused = {"relu": self._not_analytic("relu"), "leaky_relu": self._not_analytic("leaky_relu"),
                      "sigmoid": self._sigmoid, "softplus": self._softplus,
                      "log_sigmoid": lambda x: -self._softplus(-np.asarray(x)),
                      "binary_cross_entropy": self._binary_cross_entropy}

    @staticmethod
    def _sigmoid(x):
        x = np.asarray(x)
        pos = x.real >= 0
        e = np.exp(np.where(pos, -x, x))  # real part <= 0: never overflows
        return np.where(pos, 1 / (1 + e), e / (1 + e))

    @staticmethod
    def _softplus(x):
        x = np.asarray(x)
        pos = x.real >= 0
        e = np.exp(np.where(pos, -x, x))
        return np.where(pos, x + np.log1p(e), np.log1p(e))

    def _binary_cross_entropy(self, z, y):
        from .formulas import batch_size
        return np.sum(self._softplus(z) - z * y) / batch_size(z)

    @staticmethod
    def _not_analytic(op: str) -> Callable:
        def refuse(*args, **kwargs):
            raise NotAnalyticError(
                f"{op} is not analytic (it has a kink at 0), so the complex step cannot differentiate it; "
                f"use method='central' or method='reverse', or a smooth activation such as softplus or tanh"
            )
        return refuse

    @staticmethod
    def _check_kink(op: str, at_kink: np.ndarray, moving: np.ndarray) -> None:
        if np.any(at_kink & moving):
            raise NotAnalyticError(
                f"{op}: the complex step hit the kink exactly (equal real parts with a perturbation "
                f"in the imaginary part); the derivative is undefined there. Use method='central' or 'reverse'."
            )

    def abs(self, x):
        x = np.asarray(x)
        self._check_kink("abs", x.real == 0, x.imag != 0)
        return np.where(x.real < 0, -x, x)

    def sign(self, x):
        return np.sign(np.asarray(x).real)

    def maximum(self, x, y):
        x, y = np.asarray(x), np.asarray(y)
        self._check_kink("maximum", x.real == y.real, x.imag != y.imag)
        return np.where(x.real >= y.real, x, y)

    def minimum(self, x, y):
        x, y = np.asarray(x), np.asarray(y)
        self._check_kink("minimum", x.real == y.real, x.imag != y.imag)
        return np.where(x.real <= y.real, x, y)

    def max(self, x, axis=None, keepdims=False):
        x = np.asarray(x)
        idx = np.argmax(x.real, axis=axis)
        if axis is None:
            out = x.reshape(-1)[idx]
            return np.reshape(out, (1,) * x.ndim) if keepdims else out
        out = np.take_along_axis(x, np.expand_dims(idx, axis), axis=axis)
        return out if keepdims else np.squeeze(out, axis=axis)

    def isfinite(self, x):
        return np.isfinite(x)

    def __getattr__(self, op: str):
        if op.startswith("__"):
            raise AttributeError(op)
        return getattr(np, op)

    def __repr__(self) -> str:
        return "<diffkit namespace 'complex'>"


COMPLEX = _ComplexNamespace()


def _is_complex(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return x.dtype.kind == "c"
    return isinstance(x, (complex, np.complexfloating))


register_backend("mpmath", _is_mp, MP)
register_backend("complex", _is_complex, COMPLEX)
