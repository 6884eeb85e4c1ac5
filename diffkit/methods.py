"""One contract for every differentiator: ``dk.gradient(f_or_problem, theta, method=...)``.

Each method is a function ``run(f, theta, **options) -> MethodOutput``
registered under a name with :func:`register_method`.  :func:`gradient`
validates the input, counts evaluations of ``f``, times the call and wraps
the result in a :class:`GradientResult`.
"""
from __future__ import annotations

import inspect
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .problems import Problem

__all__ = ["GradientResult", "Cost", "MethodOutput", "Method", "register_method", "gradient", "methods", "METHODS",
           "resolve"]


@dataclass
class Cost:
    """What a gradient cost: wall seconds, evaluations of f, peak memory, method counters.

    ``peak_bytes`` is measured with tracemalloc only when ``gradient(...,
    memory=True)`` (tracing slows Python code, so it is measured in a
    separate run); otherwise it is ``None``.
    """

    wall_s: float
    evaluations: int
    peak_bytes: int | None = None
    counters: dict = field(default_factory=dict)


@dataclass
class GradientResult:
    """``value`` f(theta); ``grad`` float64 with theta's shape; ``method``; ``cost``."""

    value: float
    grad: np.ndarray
    method: str
    cost: Cost
    names: Callable[[int], str] | None = None

    def component_name(self, i: int) -> str:
        return self.names(i) if self.names else default_name(i, self.grad.shape)

    def __repr__(self) -> str:
        return (f"GradientResult(method={self.method!r}, value={self.value:.17g}, grad shape={self.grad.shape}, "
                f"wall={self.cost.wall_s:.3g}s, evaluations={self.cost.evaluations})")


@dataclass
class MethodOutput:
    value: Any
    grad: Any
    counters: dict = field(default_factory=dict)
    evaluations: int | None = None  # when a method evaluates f in batches, it counts itself


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # automatic | numeric | symbolic | peer
    summary: str
    run: Callable | None
    available: bool = True
    hint: str = ""

    options: tuple = ()  # the run function's keyword options, read once at registration

    def line(self) -> str:
        status = "" if self.available else f"  [unavailable: {self.hint}]"
        return f"{self.name:<14} {self.kind:<10} {self.summary}{status}"


METHODS: dict[str, Method] = {}


def register_method(name: str, kind: str, summary: str, *, available: bool = True, hint: str = ""):
    """Register ``run(f, theta, **options) -> MethodOutput`` as ``dk.gradient(..., method=name)``."""
    def decorate(run: Callable | None):
        METHODS[name] = Method(name, kind, summary, run, available, hint, _option_names(run))
        return run
    return decorate


def _option_names(run: Callable | None) -> tuple[str, ...]:
    if run is None:
        return ()
    params = list(inspect.signature(run).parameters.values())[2:]
    return tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD)


def methods() -> list[str]:
    """The registered methods, one line each: name, kind, what it does (and why it is unavailable)."""
    _load_methods()
    return [m.line() for m in METHODS.values()]


def _load_methods() -> None:
    from . import reverse  # noqa: F401  (each module registers its methods on import)
    for optional in ("finite_differences", "symbolic", "peers"):
        try:
            __import__(f"{__package__}.{optional}")
        except ModuleNotFoundError as err:
            if err.name != f"{__package__}.{optional}":
                raise


def default_name(i: int, shape: tuple) -> str:
    if len(shape) <= 1:
        return f"theta[{i}]"
    return "theta[" + ",".join(str(int(k)) for k in np.unravel_index(i, shape)) + "]"


def resolve(f: Any, theta: Any) -> tuple[Callable, np.ndarray, Callable[[int], str]]:
    """Turn ``f_or_problem, theta`` into (function, validated float64 theta, component namer)."""
    if isinstance(f, Problem):
        fn, names = f.fn, f.component_name
        theta = f.theta0 if theta is None else theta
    elif callable(f):
        if theta is None:
            raise ValueError("theta is required when f is a function (only a Problem carries its own theta0)")
        fn, names = f, None
    else:
        raise TypeError(f"expected a function of theta or a dk.problems.Problem; got {type(f).__name__}")
    try:
        arr = np.array(theta, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"theta must be an array of real numbers; got {type(theta).__name__}: {err}") from None
    if arr.size == 0:
        raise ValueError("theta is empty: there is nothing to differentiate with respect to")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        namer = names or (lambda i: default_name(i, arr.shape))
        shown = ", ".join(f"{namer(int(i))}={arr.flat[i]}" for i in bad[:10])
        more = f" and {bad.size - 10} more" if bad.size > 10 else ""
        raise ValueError(f"theta has {bad.size} non-finite entr{'y' if bad.size == 1 else 'ies'}: {shown}{more}")
    return fn, arr, names or (lambda i: default_name(i, arr.shape))


class CountedFunction:
    """Counts calls of f and insists that each returns a scalar."""

    def __init__(self, fn: Callable):
        self.fn = fn
        self.calls = 0

    def __call__(self, theta):
        self.calls += 1
        out = self.fn(theta)
        check_scalar(out)
        return out


def check_scalar(out: Any) -> None:
    shape = np.shape(out)
    if shape not in ((), (1,)):
        raise ValueError(
            f"f must return a scalar, but it returned an array of shape {shape}; sum or average it, "
            f"or use dk.vjp(f, theta) for the vector-Jacobian product of a vector-valued function"
        )


def get_method(method: str) -> Method:
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
    fn, arr, names = resolve(f, theta)
    spec = get_method(method)
    unknown = set(options) - set(spec.options) - {"memory"}
    if unknown:
        raise TypeError(f"method {method!r} got unknown option(s) {', '.join(sorted(unknown))}; "
                        f"its options are: {', '.join(spec.options) or 'none'}")
    if memory and "memory" in spec.options:
        options = {**options, "memory": True}
    counted = CountedFunction(fn)
    start = time.perf_counter()
    out = spec.run(counted, arr.copy(), **options)
    wall = time.perf_counter() - start
    peak = _peak_bytes(spec, fn, arr, options) if memory else None
    grad = np.asarray(out.grad, dtype=np.float64)
    if grad.shape != arr.shape:
        grad = np.broadcast_to(grad, arr.shape).copy()
    cost = Cost(wall, counted.calls if out.evaluations is None else out.evaluations, peak, dict(out.counters))
    return GradientResult(float(np.real(out.value)), grad, method, cost, names)


def _peak_bytes(spec: Method, fn: Callable, arr: np.ndarray, options: dict) -> int:
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    spec.run(CountedFunction(fn), arr.copy(), **options)
    peak = tracemalloc.get_traced_memory()[1] - base
    if not was_tracing:
        tracemalloc.stop()
    return peak
