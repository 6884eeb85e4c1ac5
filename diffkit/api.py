"""``dk.gradient``: one contract for every differentiator.

Each method is a function ``run(f, theta, **options) -> MethodOutput``
registered under a name (:func:`diffkit.methods.register_method`), in the
modules of :data:`METHOD_MODULES`.  :func:`gradient` validates the input,
finds the method (importing only the module it needs, cheapest first),
counts evaluations of ``f``, times the call and wraps the result in a
:class:`~diffkit.methods.GradientResult`.  This module sits above the
methods; the registry (:mod:`diffkit.methods`) sits below them.
"""
from __future__ import annotations

import time
import tracemalloc
from typing import Any, Callable

import numpy as np

from .dispatch import TRACERS
from .methods import (METHODS, Cost, CountedFunction, GradientResult, Method, _nested, as_theta,
                      resolve, screen_finite)
from .problems import Problem
from .reverse import eager

__all__ = ["gradient", "methods", "get_method", "METHOD_MODULES"]

_F64 = np.dtype(np.float64)


def methods() -> list[str]:
    """The registered methods, one line each: name, kind, what it does (and why it is unavailable).

    >>> import diffkit as dk
    >>> names = [line.split()[0] for line in dk.methods()]
    >>> all(m in names for m in ("reverse", "central", "complex_step", "symbolic"))
    True
    """
    _load_methods()
    return [m.line() for m in METHODS.values()]


# The modules that register methods, cheapest first: a method found early never imports SymPy or the peers.
METHOD_MODULES = ("reverse", "forward", "finite_differences", "symbolic", "peers")


# The order dk.methods() lists them in, whichever module happened to be imported first.
CANONICAL = ("reverse", "forward_ad", "forward", "backward", "central", "central4", "complex_step", "richardson",
             "symbolic", "torch", "jax", "autograd")


def _in_canonical_order() -> None:
    rank = {name: i for i, name in enumerate(CANONICAL)}
    ordered = sorted(METHODS.items(), key=lambda item: rank.get(item[0], len(rank)))
    METHODS.clear()
    METHODS.update(ordered)


def _load_methods(until: str | None = None) -> None:
    """Import the method modules (each registers its methods) until ``until`` is registered, or all of them."""
    import importlib
    for module in METHOD_MODULES:
        if until is not None and until in METHODS:
            return
        try:
            importlib.import_module(f"{__package__}.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"{__package__}.{module}":
                raise
        _in_canonical_order()


def get_method(method: str) -> Method:
    if not isinstance(method, str):
        _load_methods()
        raise TypeError(f"method must be a method name (a string); got {type(method).__name__} {method!r:.60}; "
                        f"valid methods: {', '.join(METHODS)}")
    _load_methods(until=method)
    if method not in METHODS:
        _load_methods()
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    spec = METHODS[method]
    if not spec.available:
        raise ValueError(f"method {method!r} is not available here: {spec.hint}")
    return spec


def gradient(f: Any, theta: Any = None, method: str = "reverse", *, memory: bool = False,
             **options: Any) -> GradientResult:
    """Differentiate a scalar function (or a :class:`~diffkit.problems.Problem`) at theta.

    ``method`` is any name in :func:`methods` (``"reverse"``, the finite
    differences, ``"symbolic"`` ...); ``options`` go to the method.  With
    ``memory=True`` the call is repeated under tracemalloc to record the peak
    bytes allocated.

    >>> import numpy as np, diffkit as dk
    >>> r = dk.gradient(lambda t: (t[0] + t[1]) * t[2], np.array([-2.0, 5.0, -4.0]))
    >>> r.value, r.grad.tolist()
    (-12.0, [-4.0, -4.0, 3.0])
    """
    if type(theta) is not np.ndarray:
        if _is_array_api(theta):
            return _array_api_gradient(f, theta, method, options)
    elif method == "reverse" and not options and not memory and theta.dtype == _F64 and theta.size:
        # the common call, run straight: the generic path's wrappers (counting, option checks, the method's
        # output) cost ~4-10 us a call, 3-6 % of a gradient at P = 1e3 (the tape never writes to theta: no copy)
        problem = isinstance(f, Problem)
        if problem and theta.shape == f.theta0.shape or not problem and callable(f):
            screen_finite(theta, f.component_name if problem else None)
            start = time.perf_counter()
            value, grad, counters = eager(f.fn if problem else f, theta)
            cost = Cost(time.perf_counter() - start, 1, None, counters)
            return _result(value, grad, theta, method, cost, f.component_name if problem else None)
    fn, arr, names = resolve(f, theta, copy=method != "reverse")  # (the tape never writes to theta: no copy)
    if _nested(arr):  # traced or mpmath: dk.gradient inside a function being differentiated
        from .forward import traced_gradient
        return traced_gradient(fn, arr, method, names)
    spec = METHODS.get(method) if type(method) is str else None  # (registered and available: the common case)
    if spec is None or not spec.available:
        spec = get_method(method)
    unknown = set(options) - set(spec.options) - {"memory"} if options else ()  # (signature: ~0.1 ms)
    if unknown:
        raise TypeError(f"method {method!r} got unknown option(s) {', '.join(sorted(unknown))}; "
                        f"its options are: {', '.join(spec.options) or 'none'}")
    if memory and "memory" in spec.options:
        options = {**options, "memory": True}
    counted = CountedFunction(fn)
    start = time.perf_counter()
    out = spec.run(counted, arr.copy() if memory else arr, **options)  # resolve() made arr the method's own
    wall = time.perf_counter() - start
    peak = _peak_bytes(spec, fn, arr, options) if memory else None
    cost = Cost(wall, counted.calls if out.evaluations is None else out.evaluations, peak, dict(out.counters))
    return _result(out.value, out.grad, arr, method, cost, names)


def _result(value: Any, grad: Any, arr: np.ndarray, method: str, cost: Cost, names) -> GradientResult:
    """A method's value and gradient as the caller gets them: a float, and float64 with theta's shape."""
    if type(grad) in TRACERS or type(value) in TRACERS:  # f closed over an enclosing derivative's trace
        return GradientResult(value, grad, method, cost, names)
    grad = np.asarray(grad, dtype=np.float64)
    if grad.shape != arr.shape:
        grad = np.broadcast_to(grad, arr.shape).copy()
    value = getattr(value, "real", value)  # (np.real is a Python wrapper)
    return GradientResult(float(value), grad, method, cost, names)


def _is_array_api(theta: Any) -> bool:
    return type(theta).__module__.split(".")[0] not in ("numpy", "builtins", "diffkit") and hasattr(
        theta, "__array_namespace__")


def _array_api_gradient(f: Any, theta: Any, method: str, options: dict) -> GradientResult:
    """theta of another array library (CuPy, array-api-strict): the tape records on those values themselves;
    the other methods compute their stencils on a host copy and hand f the library's arrays."""
    from .array_api import from_host, to_host
    host = as_theta(to_host(theta))
    fn, _, names = resolve(f, host)
    spec = get_method(method)
    if spec.kind == "automatic":
        counted = CountedFunction(fn)
        run_on = from_host(host, like=theta)  # f's own copy, on the values' device
    else:
        counted = CountedFunction(lambda t: to_host(fn(from_host(np.asarray(t, dtype=float), like=theta))))
        run_on = host
    start = time.perf_counter()
    out = spec.run(counted, run_on, **options)
    wall = time.perf_counter() - start
    grad = np.broadcast_to(to_host(out.grad), host.shape).astype(np.float64)
    cost = Cost(wall, counted.calls if out.evaluations is None else out.evaluations, None, dict(out.counters))
    return GradientResult(float(to_host(out.value)), grad, method, cost, names)


def _peak_bytes(spec: Method, fn: Callable, arr: np.ndarray, options: dict) -> int:
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:  # stopped whatever happens: left tracing (a budget hit mid-call), every later allocation costs ~10x
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        spec.run(CountedFunction(fn), arr.copy(), **options)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        if not was_tracing:
            tracemalloc.stop()
