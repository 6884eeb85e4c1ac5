"""``dk.namespace``: which array namespace the arrays of a call belong to.

Backends, in the order they are tried:

========  =============================================  ==========================================
backend   arrays                                         namespace
========  =============================================  ==========================================
traces    tape arrays, forward-mode duals                the trace's namespace; when traces nest,
                                                         the innermost (highest level) wins
peers     torch / jax / autograd arrays                  the peer's array-API namespace
sympy     object arrays of SymPy expressions             generated from the primitive table
mpmath    object arrays of ``mpmath.mpf``                generated from the primitive table
complex   complex128 arrays (the complex step)           generated from the primitive table
numpy     float arrays and Python numbers                generated from the primitive table
========  =============================================  ==========================================

Every diffkit namespace is generated from :mod:`diffkit.primitives`; none is
the numpy module itself, so ``xp.erf`` or ``xp.linalg.slogdet`` work on plain
float arrays too.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

__all__ = ["namespace", "register_backend", "register_tracer", "NotAnalyticError", "TRACERS", "strip", "dtype_kind"]


class NotAnalyticError(ValueError):
    """The complex step met a function that is not analytic where it was evaluated."""


TRACERS: dict[type, Callable[[Any], Any]] = {}  # trace array type -> its namespace (each instance has a _level)
_BACKENDS: list = []  # (name, detect, namespace), in priority order
_DEFAULT: list = [None]  # the numpy namespace, set by diffkit.backends
_REAL = (float, int, bool, np.float64)


def register_tracer(array_type: type, namespace_of: Callable[[Any], Any]) -> None:
    """A trace's array type (with ``_level`` and ``_inner``, the value under it) and how to find its namespace."""
    TRACERS[array_type] = namespace_of


def strip(x: Any) -> Any:
    """The plain value under any number of traces (for ops that carry no derivative)."""
    while type(x) in TRACERS:
        x = x._inner
    return x


GENERIC = "array_api"  # the backend of any other array-API library: it is asked last


def dtype_kind(dtype: Any) -> str:
    """numpy's kind letter of any array library's dtype ('b', 'i', 'u', 'f', 'c', 'O' ...)."""
    try:
        return np.dtype(dtype).kind
    except TypeError:  # another library's dtype object (array-api-strict's): its name
        return np.dtype(str(dtype).rsplit(".", 1)[-1].strip("'>")).kind


def register_backend(name: str, detect: Callable[[Any], bool], ns: Any = None, *, priority: int | None = None,
                     loader: Callable[[], Any] | None = None, array_type: type | None = None) -> None:
    """Add a backend: ``detect(x)`` says whether ``x`` belongs to it, ``ns`` is its namespace.

    ``loader(array)`` instead of ``ns`` builds the namespace on first use (SymPy's) or per library (the
    array API's).  Earlier (lower ``priority``) backends win when a call mixes arrays of several.
    """
    get = loader if loader is not None else (lambda array: ns)
    _BACKENDS[:] = [b for b in _BACKENDS if b[0] != name]
    if priority is None:  # before the generic array-API backend, which claims any array with __array_namespace__
        generic = [i for i, b in enumerate(_BACKENDS) if b[0] == GENERIC]  # (jax and autograd arrays have one)
        priority = generic[0] if generic and name != GENERIC else len(_BACKENDS)
    _BACKENDS.insert(priority, (name, detect, get))


def set_default(ns: Any) -> None:
    _DEFAULT[0] = ns


def namespace(*arrays: Any) -> Any:
    """Return the array namespace that the given arrays belong to.

    >>> import numpy as np, diffkit as dk
    >>> dk.namespace(np.ones(3)).name
    'numpy'
    >>> dk.namespace(np.ones(3) + 0j).name
    'complex'
    >>> float(dk.namespace(np.ones(1)).erf(np.array(0.5)))
    0.5204998778130465
    """
    top, plain = None, True
    for a in arrays:  # the common cases first: plain real numpy, and one trace
        t = type(a)
        if t in _REAL or (t is np.ndarray and a.dtype.kind in "fiub"):
            continue
        if t in TRACERS:
            if top is None:
                top = a
            elif getattr(a, "tape", None) is not getattr(top, "tape", 0) and a._level > top._level:
                top = a  # (arrays of one tape, the common case, need no level comparison)
        else:
            plain = False
    if top is not None:
        return TRACERS[type(top)](top)
    if plain:
        return _DEFAULT[0]
    for _, detect, get in _BACKENDS:
        for a in arrays:
            if detect(a):
                return get(a)
    return _DEFAULT[0]
