"""The registry of differentiators and the contract they share (what :func:`diffkit.gradient` calls).

Each method is a function ``run(f, theta, **options) -> MethodOutput``
registered under a name with :func:`register_method`; :mod:`diffkit.api`
(``dk.gradient``) finds it, validates the input with :func:`resolve`, counts
evaluations of ``f``, times the call and wraps the result in a
:class:`GradientResult`.  The methods import this module; it imports none of them.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .dispatch import TRACERS
from .problems import Problem

__all__ = ["GradientResult", "Cost", "MethodOutput", "Method", "register_method", "METHODS", "resolve"]


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
        return (f"GradientResult(method={self.method!r}, value={_digits(self.value)}, grad shape="
                f"{getattr(self.grad, 'shape', ())}, wall={self.cost.wall_s:.3g}s, evaluations={self.cost.evaluations})")


def _digits(value: Any) -> str:
    """17 digits of a float; a traced value (nested differentiation: a tape array, a dual) as its own repr."""
    try:
        return f"{value:.17g}"
    except (TypeError, ValueError):
        return repr(value)


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
    """Register ``run(f, theta, **options) -> MethodOutput`` as ``dk.gradient(..., method=name)``.

    >>> import numpy as np, diffkit as dk
    >>> from diffkit.methods import MethodOutput
    >>> @dk.register_method("doubling", "numeric", "the gradient of sum(t^2), written out")
    ... def doubling(f, theta):
    ...     return MethodOutput(f(theta), 2 * theta)
    >>> dk.gradient(lambda t: dk.namespace(t).sum(t * t), np.array([1.0, -2.0]), method="doubling").grad.tolist()
    [2.0, -4.0]
    >>> from diffkit.methods import METHODS; del METHODS["doubling"]
    """
    def decorate(run: Callable | None):
        METHODS[name] = Method(name, kind, summary, run, available, hint, _option_names(run))
        return run
    return decorate


def _option_names(run: Callable | None) -> tuple[str, ...]:
    if run is None:
        return ()
    params = list(inspect.signature(run).parameters.values())[2:]
    return tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD)


def default_name(i: int, shape: tuple) -> str:
    if len(shape) <= 1:
        return f"theta[{i}]"
    return "theta[" + ",".join(str(int(k)) for k in np.unravel_index(i, shape)) + "]"


def resolve(f: Any, theta: Any, copy: bool = True) -> tuple[Callable, np.ndarray, Callable[[int], str]]:
    """Turn ``f_or_problem, theta`` into (guarded function, validated float64 theta, component namer).

    The function is wrapped in :class:`GuardedFunction`: each call gets its own copy of a numpy theta, so an
    ``f`` that writes to its argument (``t *= 2``) cannot corrupt the point being differentiated.
    ``copy=False``: a float64 theta is used as it is, for a caller that never writes to it and never hands it
    to f (the tape hands f its own immutable arrays).
    """
    if isinstance(f, Problem):
        fn, names = f.fn, f.component_name
        theta = f.theta0 if theta is None else theta
        if theta is not f.theta0:
            arr = as_theta(theta)
            if arr.shape != f.theta0.shape:
                raise ValueError(f"theta has shape {arr.shape}, but problem {f.name!r} takes a flat theta of "
                                 f"{f.size} parameters (shape {f.theta0.shape}); pass theta=None for its theta0")
    elif callable(f):
        if theta is None:
            raise ValueError("theta is required when f is a function (only a Problem carries its own theta0)")
        fn, names = f, None
    else:
        raise TypeError(f"f must be a function of theta or a dk.problems.Problem; got {type(f).__name__} {f!r:.60}")
    if _nested(theta):  # a traced or mpmath theta keeps its type (nested differentiation, diffkit.forward)
        return fn, theta, names or (lambda i: default_name(i, tuple(theta.shape)))
    arr = theta if not copy and type(theta) is np.ndarray and theta.dtype == np.float64 and theta.size \
        else as_theta(theta)
    screen_finite(arr, names)
    return guard(fn), arr, names or (lambda i: default_name(i, arr.shape))


def screen_finite(arr: np.ndarray, names: Callable[[int], str] | None = None) -> None:
    """ValueError naming theta's non-finite entries (at most ten), if it has any.

    >>> screen_finite(np.array([1.0, np.inf, np.nan]))
    Traceback (most recent call last):
    ...
    ValueError: theta has 2 non-finite entries: theta[1]=inf, theta[2]=nan
    """
    # one pass, no temporaries: finite unless an entry is not (or the sum overflows: then the scan finds none);
    # a few entries as Python floats, where numpy's reduction would cost more than the call it guards; more as
    # theta . theta (BLAS, a quarter faster than a sum: NaN and inf carry through a sum of squares, none cancel;
    # vdot, since matmul and dot warn when a large finite theta's squares overflow, which the scan then clears)
    total = sum(arr.ravel().tolist()) if arr.size <= 32 else float(np.vdot(arr, arr))
    bad = np.flatnonzero(~np.isfinite(arr)) if not math.isfinite(total) else ()
    if len(bad):
        namer = names or (lambda i: default_name(i, arr.shape))
        shown = ", ".join(f"{namer(int(i))}={arr.flat[i]}" for i in bad[:10])
        more = f" and {bad.size - 10} more" if bad.size > 10 else ""
        raise ValueError(f"theta has {bad.size} non-finite entr{'y' if bad.size == 1 else 'ies'}: {shown}{more}")


def _nested(theta: Any) -> bool:
    """A traced theta, or mpmath values (a function differentiated by dk.reference calls dk.gradient)."""
    if type(theta) is np.ndarray and theta.dtype != object:  # the common case, before an import statement
        return False
    from .dispatch import namespace
    if type(theta) in TRACERS:
        return True
    return type(theta) is np.ndarray and theta.dtype == object and namespace(theta).name == "mpmath"


_REAL_KINDS = "fiu"  # float, signed and unsigned integers: what a real theta may be made of


def as_theta(theta: Any, name: str = "theta") -> np.ndarray:
    """theta (or the array called ``name``) as a new float64 array, or TypeError/ValueError saying what is wrong.

    Refused, because converting them would change the question silently: strings, bools, dates
    (datetime64/timedelta64), masked arrays (the mask would be dropped) and complex numbers (the imaginary
    part would be dropped; every method differentiates a real function of real parameters).

    >>> as_theta([1, 2.5]).tolist()
    [1.0, 2.5]
    >>> as_theta([True, False])
    Traceback (most recent call last):
    ...
    TypeError: theta must hold real numbers (floats or integers); got bool values. Pass floats, e.g. np.array([1.0, 0.0])
    """
    if type(theta) is np.ndarray and theta.dtype == np.float64 and theta.size:  # the common case: a copy
        return theta.copy()
    hint = "Pass floats, e.g. np.array([1.0, 0.0])"
    if isinstance(theta, np.ma.MaskedArray):
        raise TypeError(f"{name} must be a plain array; got a masked array (np.ma), whose mask diffkit would drop. "
                        f"Fill or remove the masked entries first: x.filled(value) or x.compressed()")
    if isinstance(theta, (str, bytes, dict, set, frozenset)) or theta is None:
        raise TypeError(f"{name} must be an array of real numbers; got {type(theta).__name__} {theta!r:.60}. {hint}")
    try:
        raw = np.asarray(theta)
    except (TypeError, ValueError) as err:  # ragged lists
        raise TypeError(f"{name} must be a rectangular array of real numbers; got {type(theta).__name__}: "
                        f"{err}. {hint}") from None
    kind = raw.dtype.kind
    if kind == "O":
        values = raw.reshape(-1).tolist()
        wrongs = [v for v in values if isinstance(v, (bool, np.bool_)) or not _is_real_number(v)][:1]
        if wrongs:
            wrong = wrongs[0]
            kind = "b" if isinstance(wrong, (bool, np.bool_)) else "c" if isinstance(wrong, complex) else "?"
            if kind == "?":
                raise TypeError(f"{name} must hold real numbers (floats or integers); got an element of type "
                                f"{type(wrong).__name__}: {wrong!r:.40}. {hint}")
    names = {"b": "bool", "U": "string", "S": "bytes", "M": "datetime64", "m": "timedelta64", "c": "complex",
             "V": "structured (void)"}
    if kind in names:
        extra = (" (the imaginary part would be dropped; diffkit differentiates real functions of real "
                 "parameters: pass theta.real, or split real and imaginary parts into two real parameters)"
                 if kind == "c" else "")
        raise TypeError(f"{name} must hold real numbers (floats or integers); got {names[kind]} values{extra}. {hint}")
    if kind not in _REAL_KINDS + "O":
        raise TypeError(f"{name} must hold real numbers; got dtype {raw.dtype}. {hint}")
    try:
        arr = np.array(raw, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as err:
        raise TypeError(f"{name} must hold real numbers that fit in float64; {err}. {hint}") from None
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}): there is nothing to differentiate with respect to")
    return arr


_F64 = np.dtype(np.float64)


def _is_real_number(v: Any) -> bool:
    import numbers
    if isinstance(v, numbers.Real):
        return True
    return type(v).__name__ in ("mpf",)  # mpmath reals (a float64 conversion is exact enough for theta)


class GuardedFunction:
    """The user's ``f``, handed its own copy of a numpy theta on every call.

    Methods evaluate f at a working array (finite differences at theta itself, then at shifted copies); an f
    that writes to its argument would otherwise change the points that follow.  The tape's arrays are
    immutable and say so themselves when f writes to them.  ``fn`` is the user's function (the symbolic
    cache key); other attributes (``f.batched``) are looked up on it.
    """

    def __init__(self, fn: Callable):
        self.fn = fn

    def __getattr__(self, name: str):
        return getattr(self.__dict__["fn"], name)

    def __call__(self, theta):
        return self.fn(theta.copy() if isinstance(theta, np.ndarray) else theta)


def guard(fn: Callable) -> Callable:
    """``fn`` wrapped in a :class:`GuardedFunction` (once)."""
    return fn if isinstance(fn, (GuardedFunction, CountedFunction)) else GuardedFunction(fn)


def user_function(fn: Callable) -> Callable:
    """The user's own function under diffkit's wrappers (its identity is a cache key)."""
    while isinstance(fn, (GuardedFunction, CountedFunction)):
        fn = fn.fn
    return fn


class CountedFunction:
    """Counts calls of f (guarded: each gets its own theta) and insists that each returns a scalar.

    ``fn`` is the user's own function: methods key their caches on it and find ``f.batched`` there.
    """

    def __init__(self, fn: Callable):
        self.fn = user_function(fn)
        self.calls = 0

    def __getattr__(self, name: str):
        return getattr(self.__dict__["fn"], name)

    def __call__(self, theta):
        self.calls += 1
        # (the guard, inline: self.fn is the user's function under any GuardedFunction, whose one job this is)
        out = self.fn(theta.copy() if isinstance(theta, np.ndarray) else theta)
        check_scalar(out)
        return out


def check_scalar(out: Any) -> None:
    """Refuse what f may not return: None, text, bools, non-numeric or non-scalar values."""
    if type(out) in (np.float64, np.ndarray) and out.dtype == _F64 and out.shape == ():  # the common answer, at once
        return
    if type(out) in TRACERS and getattr(out, "dtype", None) is _F64 and getattr(out, "shape", None) == ():
        return  # (a traced numpy float64 scalar: `is`, since another library's dtype warns when compared with numpy's)
    if out is None:
        raise TypeError("f returned None: it must return a number (did the function forget `return`?)")
    if isinstance(out, (str, bytes, dict, list, tuple, set)):
        raise TypeError(f"f must return a number; it returned {type(out).__name__} {out!r:.60}")
    if isinstance(out, (bool, np.bool_)) or getattr(getattr(out, "dtype", None), "kind", "f") in "bUSMmV":
        raise TypeError(f"f must return a real number; it returned {type(out).__name__} {out!r:.60}, which has no "
                        f"derivative (a comparison? return the quantity itself)")
    shape = getattr(out, "shape", None)  # (np.shape of a tape array goes through __array_function__: slow)
    if shape is None:
        shape = np.shape(out)
    if shape not in ((), (1,)):
        raise ValueError(
            f"f must return a scalar, but it returned an array of shape {shape}; sum or average it, "
            f"or use dk.vjp(f, theta) for the vector-Jacobian product of a vector-valued function"
        )


