"""Gradient checks for users' own test suites: ``check_gradient`` and ``assert_stable``.

``check_gradient`` compares every *exact* gradient it is given (a user's
hand-written ``grad``, and each requested method such as ``"reverse"`` or
``"symbolic"``) with each other component by component, and with central
differences along coordinates (P <= ``max_coordinates``) and along random
directions (always; the only finite-difference check for large P, at 4
evaluations of f per direction).

Tolerances come from the central-difference error model at the step used,
not from fixed constants.  Along a unit direction v with step h,

* truncation: the Richardson estimate ``|D(2h) - D(h)| / 3`` (D(h) = f' + c h^2,
  so D(2h) - D(h) = 3 c h^2 is three times the error of D(h));
* round-off: ``NOISE_ULPS * u * F / h`` (u = 2^-53), where F is the scale of f's
  rounding: the larger of max|f| on the stencil and, where the tape can run f,
  ``sum |adjoint| |value|`` over f's intermediate values (Linnainmaa's 1976
  first-order estimate: each op rounds its value by u relative, and the
  adjoint carries that into f).  The second sees a small f computed from large
  terms (f = r^2/2 with r a difference of unit-size terms), which |f| hides.

Their sum, times ``SAFETY``, is the *finite-difference floor*.  A check
**fails** when the disagreement exceeds both the floor and the tolerance
(``rtol``/``atol`` when given, otherwise the floor itself).  It is
**inconclusive** when the floor is above the requested tolerance, or above
half the gradient's scale (the differences then cannot even see the
gradient): :class:`GradientCheckInconclusive` is warned (raised with
``strict=True``) instead of a false failure.

Two exact gradients differ only by rounding, so they must agree to
``EXACT_RTOL = sqrt(u)`` relative, or 16 ulps of the largest component
absolute: a small component that is the difference of terms the size of the
large ones keeps only their rounding (or ``rtol``/``atol`` when given).

Limit: the exact comparisons' tolerances are drawn from the gradients.  A
gradient far below the terms it is computed from (a saturated softmax: every
probability within 1e-10 of its label, loss and gradient ~1e-10 from unit-size
probabilities) keeps only those terms' absolute rounding, which it does not
show; two exact methods can then agree to only ~6 digits.  Check such a point
with ``atol`` (e.g. ``atol=1e-14``), or at a point away from it.

>>> import numpy as np, diffkit as dk
>>> f = lambda t: dk.namespace(t).sum(t ** 3)
>>> dk.testing.check_gradient(f, np.array([1.0, -2.0]), grad=lambda t: 3 * t ** 2).verdict
'pass'
>>> try:
...     dk.testing.check_gradient(f, np.array([1.0, -2.0]), grad=lambda t: 2 * t ** 2)
... except AssertionError as err:
...     print(str(err).splitlines()[0])
check_gradient FAILED: 7 of 12 checks disagree, 5 agree (P=2)
>>> print(dk.testing.check_gradient(f, np.array([1.0, -2.0]), grad=lambda t: 3 * t ** 2).headline())
passed: all 12 checks agree (P=2)
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .methods import check_scalar, resolve
from .api import gradient, get_method

__all__ = ["check_gradient", "assert_stable", "rounding_scale", "GradientCheck", "GradientCheckInconclusive",
           "EXTREME_INPUTS"]

U = np.finfo(np.float64).eps / 2  # unit roundoff 2^-53
# optimal central step for |f| ~ |f'''|: minimises h^2/6 + u/h, i.e. h = (3u)^(1/3) ~ 7e-6
STEP = (3 * U) ** (1 / 3)
# round-off of f itself, in ulps of its rounding scale: a few per reduction level covers sums of some hundred terms
NOISE_ULPS = 16
# the error estimates are estimates: allow a factor over them before calling a disagreement real
SAFETY = 8
# exact gradients differ only by rounding; sqrt(u) keeps half the digits for ill-conditioned sums,
# while each real bug (sign, factor 2, transposition, missing term) moves a component by far more
EXACT_RTOL = math.sqrt(U)
# components below this fraction of the largest are compared absolutely (as in dk.error's rel_floor)
REL_FLOOR = 1e-8
# and every component to NOISE_ULPS ulps of the largest: a small component that is the difference of terms the size
# of the large ones (a dead-ish relu path under a saturated softmax) keeps only their absolute rounding
EXACT_ULPS = NOISE_ULPS
FD_NAME = "central"  # the label of the built-in directional central differences in reports

# Scalars at the float64 edges: log(2^53) = 36.74 (1 + e^-x rounds to 1), log(DBL_MAX) = 709.78 (exp
# overflows), 1075 log 2 = 745.13 (exp underflows to 0), tiny magnitudes, and the sweep's ends.
EXTREME_INPUTS = tuple(s * m for m in (0.0, 5e-324, 1e-300, 1e-8, 1.0, 36.8, 709.8, 745.2, 1000.0) for s in (1, -1)
                       if s == 1 or m != 0.0)


class GradientCheckInconclusive(UserWarning):
    """The finite-difference noise floor is above the tolerance: the check can neither pass nor fail.

    Warned by :func:`check_gradient` (raised with ``strict=True``).  It is an
    ``Exception`` but not an ``AssertionError``, so a test that does not ask
    for strictness is not failed by it.
    """


@dataclass
class Comparison:
    """One check: candidate ``a`` against ``b`` along ``where`` (a component name or a direction)."""

    where: str
    a: str
    b: str
    value_a: float
    value_b: float
    tol: float
    floor: float  # the finite-difference floor (0 for exact-vs-exact)
    verdict: str = "pass"

    @property
    def diff(self) -> float:
        return abs(self.value_a - self.value_b)

    @property
    def digits(self) -> float:
        scale = max(abs(self.value_a), abs(self.value_b))
        if not np.isfinite(self.diff):
            return 0.0
        return 16.0 if self.diff == 0 else float(np.clip(-np.log10(self.diff / max(scale, 1e-300)), 0, 16))

    def line(self) -> str:
        return (f"{self.where:<18} {self.a}={self.value_a:<+24.17g} {self.b}={self.value_b:<+24.17g} "
                f"|diff|={self.diff:<9.3g} tol={self.tol:<9.3g} fd_floor={self.floor:<9.3g} "
                f"{self.digits:4.1f} digits  {self.verdict}")


@dataclass
class GradientCheck:
    """What :func:`check_gradient` found: ``verdict`` is ``"pass"`` or ``"inconclusive"`` (failures raise)."""

    verdict: str
    comparisons: list[Comparison]
    gradients: dict[str, np.ndarray]
    step: float
    size: int
    notes: list[str] = field(default_factory=list)

    def report(self, limit: int = 8) -> str:
        bad = [c for c in self.comparisons if c.verdict != "pass"]
        lines = [f"check_gradient {self.headline()}"]
        pairs: dict[tuple, list] = {}
        for c in bad:
            pairs.setdefault((c.a, c.b, c.verdict), []).append(c)
        for (a, b, verdict), rows in pairs.items():
            worst = max(rows, key=lambda c: c.diff if np.isfinite(c.diff) else np.inf)
            what = "disagrees with" if verdict == "fail" else "cannot be decided against"
            lines.append(f"  {a} {what} {b} at {len(rows)} check(s); worst {worst.where}: {a}={worst.value_a:.17g}, "
                         f"{b}={worst.value_b:.17g} ({worst.digits:.1f} digits agree)")
        if bad:
            lines.append("  worst checks:")
            ranked = sorted(bad, key=lambda c: -(c.diff / max(c.tol, c.floor, 1e-300)) if np.isfinite(c.diff)
                            else -np.inf)
            lines += ["    " + c.line() for c in ranked[:limit]]
        lines.append(f"  central differences: step h = {self.step:.3g} along unit directions; "
                     f"fd_floor = {SAFETY} x (Richardson truncation estimate + {NOISE_ULPS} ulps of f's rounding scale / h: "
                     f"max|f|, or sum |adjoint| |value| over f's steps)")
        lines += ["  " + n for n in self.notes]
        return "\n".join(lines)

    def headline(self) -> str:
        """'passed: all 24 checks agree (P=4)', 'FAILED: 7 of 12 checks disagree, 5 agree (P=2)', ...: the
        counts say what each verdict means, so a pass never reads as a failure."""
        counts = {v: sum(c.verdict == v for c in self.comparisons) for v in ("pass", "fail", "inconclusive")}
        total, agree = len(self.comparisons), counts["pass"]
        undecided = f"{counts['inconclusive']} undecided"
        if self.verdict == "pass":
            return f"passed: all {total} checks agree (P={self.size})"
        if self.verdict == "fail":
            rest = ", ".join(filter(None, [undecided if counts["inconclusive"] else "", f"{agree} agree"]))
            return f"FAILED: {counts['fail']} of {total} checks disagree, {rest} (P={self.size})"
        return f"INCONCLUSIVE: {counts['inconclusive']} of {total} checks undecided, {agree} agree (P={self.size})"

    def __str__(self) -> str:
        return self.report()


def _validate_tolerances(rtol, atol) -> None:
    for name, tol in (("rtol", rtol), ("atol", atol)):
        number = isinstance(tol, (int, float, np.integer, np.floating)) and not isinstance(tol, (bool, np.bool_))
        if tol is not None and not (number and np.isfinite(tol) and tol >= 0):
            raise ValueError(f"{name} must be a finite number >= 0 (or None for the finite-difference error model); "
                             f"got {tol!r}")


def _exact_methods(methods: Sequence[str]) -> list[str]:
    if isinstance(methods, str):
        raise TypeError(f"methods must be a sequence of method names such as ('reverse', 'central'); got the "
                        f"string {methods!r}")
    exact = []
    for name in methods:
        if name == FD_NAME:
            continue  # the built-in directional central differences (always available)
        spec = get_method(name)  # unknown or unavailable names raise ValueError listing the valid ones
        if spec.kind == "numeric":
            raise ValueError(f"method {name!r} is a finite-difference method; check_gradient compares exact gradients "
                             f"with its own central differences (name {FD_NAME!r}), whose error model sets the "
                             f"tolerance. Use methods such as ('reverse', 'symbolic', {FD_NAME!r})")
        exact.append(name)
    return exact


def _user_gradient(grad: Any, theta: np.ndarray) -> np.ndarray:
    g = grad(theta.copy()) if callable(grad) else grad
    try:
        g = np.array(g, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"grad must return (or be) an array of real numbers; got {type(g).__name__}: {err}") from None
    if g.size != theta.size:
        raise ValueError(f"grad has shape {g.shape} but theta has shape {theta.shape}; the gradient must have one "
                         f"entry per component of theta")
    return g.reshape(theta.shape)


def rounding_scale(fn: Callable, theta: np.ndarray) -> float:
    """``sum |adjoint| |value|`` over the intermediate values of ``fn`` at theta: f's rounding is about u times
    this (Linnainmaa 1976), however small f itself is.  0.0 where the tape cannot run fn (plain numpy code).

    A view (``t[0]``, a reshape) rounds nothing, so it adds nothing.  Here f = r^2/2 with r = 1e-3 adds
    |r| |r| (the difference), |1/2| |r^2| (the square) and |1| |f| (the halving):

    >>> import numpy as np
    >>> f"{rounding_scale(lambda t: (t[0] - t[1]) ** 2 / 2, np.array([1.001, 1.0])):.3g}"
    '2e-06'
    """
    from .tape.core import Tape
    from .tape.array import TArray

    tape = Tape(record_values=True)
    adjoints: dict = {}  # node -> sum of |what reached it| (a sweep frees each node's adjoint as it passes)

    def seen(child, parent, contribution):
        adjoints[parent] = adjoints.get(parent, 0.0) + np.abs(contribution)
    try:
        out = fn(tape.leaf(np.array(theta, dtype=np.float64)))
        if type(out) is not TArray or out.tape is not tape:
            return 0.0
        nodes = list(tape.nodes)
        adjoints[out.index] = 1.0
        tape.backward(out, on_edge=seen)
    except Exception:  # noqa: BLE001  (f is not tape code: |f| alone scales its rounding)
        return 0.0
    total = 0.0
    for i, adjoint in adjoints.items():
        if nodes[i] is not None and not nodes[i][0].scatter:  # (leaves are theta itself, views copy: exact)
            total += float(np.sum(adjoint * np.abs(tape.values[i])))
    return total if np.isfinite(total) else 0.0


def _central(fn: Callable, theta: np.ndarray, v: np.ndarray, h: float,
             f_scale: float = 0.0) -> tuple[float, float, np.ndarray]:
    """Central difference of fn along v (unit norm), its error estimate (truncation + round-off, the latter from
    the larger of max|f| on the stencil and ``f_scale``), and the direction actually differenced: theta +- h v is
    rounded, so the exact gradients are projected on ((theta + h v) - (theta - h v)) / 2h, not on v (the
    stencil's own rounding is then no error at all)."""
    points = {s: theta + s * h * v for s in (1, -1, 2, -2)}
    vals = {s: float(np.real(np.reshape(fn(x), ()))) for s, x in points.items()}
    d1 = (vals[1] - vals[-1]) / (2 * h)
    d2 = (vals[2] - vals[-2]) / (4 * h)
    noise = NOISE_ULPS * U * max(f_scale, *(abs(x) for x in vals.values())) / h
    return d1, abs(d2 - d1) / 3 + noise, (points[1] - points[-1]) / (2 * h)


def _judge(diff: float, tol: float, floor: float, scale: float, user_tol: bool) -> str:
    if not diff <= max(tol, floor):  # also catches nan
        return "fail"
    if (user_tol and floor > tol) or floor > 0.5 * scale:
        return "inconclusive"
    return "pass"


def check_gradient(f: Any, theta: Any = None, grad: Any = None, *, methods: Sequence[str] = ("reverse", "central"),
                   reference: bool = False, rtol: float | None = None, atol: float | None = None, seed: int = 0,
                   directions: int = 3, max_coordinates: int = 64, strict: bool = False) -> GradientCheck:
    """Check a gradient (``grad``, or diffkit's own methods on ``f``) against each other and central differences.

    ``f`` is a scalar function of theta (or a :class:`~diffkit.problems.Problem`,
    whose components are then named like ``W2[3,7]``).  ``grad`` is a
    hand-written gradient, a callable of theta or an array.  ``methods``
    lists diffkit methods to compare (exact ones such as ``"reverse"`` and
    ``"symbolic"``) and ``"central"`` for the finite-difference checks: per
    coordinate when P <= ``max_coordinates``, and along ``directions`` random
    unit directions (from ``seed``).  ``rtol``/``atol`` replace the error
    model's tolerance.  ``reference=True`` also judges every exact gradient
    against the mpmath reference, to say *which* one is wrong.

    Returns a :class:`GradientCheck` (verdict ``"pass"`` or
    ``"inconclusive"``, with :class:`GradientCheckInconclusive` warned or,
    with ``strict=True``, raised).  A failure raises ``AssertionError`` with
    the report: the worst checks by component name, each side's value, the
    error, the tolerance and the digits that agree.

    >>> import numpy as np, diffkit as dk
    >>> prob = dk.problems.mlp([2, 3, 2], activation="tanh", batch=4)
    >>> dk.testing.check_gradient(prob).verdict
    'pass'
    """
    fn, arr, names = resolve(f, theta)
    _validate_tolerances(rtol, atol)
    if directions < 0 or max_coordinates < 0:
        raise ValueError(f"directions and max_coordinates must be >= 0; got {directions} and {max_coordinates}")
    exact = _exact_methods(methods)
    check_scalar(fn(arr.copy()))
    grads = {"grad": _user_gradient(grad, arr)} if grad is not None else {}
    for name in exact:
        grads[name] = gradient(f, arr, method=name).grad
    use_fd = FD_NAME in methods
    if len(grads) + use_fd < 2:
        raise ValueError(f"nothing to compare: give grad=, or at least two of methods (exact ones and {FD_NAME!r}); "
                         f"got grad={'given' if grad is not None else None}, methods={tuple(methods)}")
    user_tol = rtol is not None or atol is not None
    rt, at = rtol or 0.0, atol or 0.0
    comparisons = _exact_comparisons(grads, names, rt, at, user_tol)
    h = STEP * max(1.0, float(np.max(np.abs(arr))))
    if use_fd and grads:
        comparisons += _fd_comparisons(fn, arr, grads, names, h, rt, at, user_tol, seed, directions, max_coordinates)
    verdicts = {c.verdict for c in comparisons}
    verdict = "fail" if "fail" in verdicts else "inconclusive" if "inconclusive" in verdicts else "pass"
    result = GradientCheck(verdict, comparisons, grads, h, arr.size)
    if reference:
        result.notes += _reference_notes(f, arr, grads)
    if verdict == "fail":
        failure = AssertionError(result.report())
        failure.check = result  # the GradientCheck, for programs that inspect the failing comparisons
        raise failure
    if verdict == "inconclusive":
        if strict:
            raise GradientCheckInconclusive(result.report())
        warnings.warn(result.report(), GradientCheckInconclusive, stacklevel=2)
    return result


def _exact_comparisons(grads, names, rt, at, user_tol) -> list[Comparison]:
    out = []
    keys = list(grads)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            ga, gb = grads[a].ravel(), grads[b].ravel()
            scale = np.maximum(np.abs(ga), np.abs(gb)) + REL_FLOOR * np.max(np.abs(gb), initial=0.0)
            largest = np.max(np.abs(gb), initial=0.0)
            tol = rt * np.abs(gb) + at if user_tol else EXACT_RTOL * scale + EXACT_ULPS * U * largest
            for k in range(ga.size):
                c = Comparison(names(k), a, b, float(ga[k]), float(gb[k]), float(tol[k]), 0.0)
                c.verdict = "pass" if c.diff <= c.tol else "fail"
                out.append(c)
    return out


def _fd_comparisons(fn, arr, grads, names, h, rt, at, user_tol, seed, directions, max_coordinates):
    rng = np.random.default_rng(seed)
    dirs = []
    if arr.size <= max_coordinates:
        for k in range(arr.size):
            e = np.zeros(arr.size)
            e[k] = 1.0
            dirs.append((names(k), e))
    for k in range(directions):
        v = rng.standard_normal(arr.size)
        dirs.append((f"random direction {k}", v / np.linalg.norm(v)))
    out = []
    f_scale = rounding_scale(fn, arr)
    for where, v in dirs:
        v = v.reshape(arr.shape)
        fd, err, v_eff = _central(fn, arr, v, h, f_scale)
        for name, g in grads.items():
            gv = float(np.vdot(g, v_eff))
            scale = float(np.linalg.norm(g))  # |g| |v| with |v| = 1, as the reference's certification
            c = Comparison(where, name, FD_NAME, gv, fd, rt * abs(fd) + at if user_tol else SAFETY * err, SAFETY * err)
            c.verdict = _judge(c.diff, c.tol, c.floor, scale, user_tol)
            out.append(c)
    return out


def _reference_notes(f, arr, grads) -> list[str]:
    from .accuracy import error
    from .reference import CertificationError, reference

    try:
        ref = reference(f, arr, digits=30, max_coordinates=min(arr.size, 64))
    except CertificationError as err:
        return [f"mpmath reference: {err}"]
    notes = ["judged against the 30-digit mpmath reference (certified by high-precision central differences):"]
    for name, g in grads.items():
        e = error(g, ref)
        wrong = e.digits < -math.log10(EXACT_RTOL)
        notes.append(f"  {name:<10} {e.digits:4.1f} digits, worst {ref.component_name(e.worst_index)}: "
                     f"{e.worst_value:.17g} vs {e.worst_reference:.17g}  -> {'WRONG' if wrong else 'right'}")
    return notes


def assert_stable(f: Any, inputs: Sequence[Any] = EXTREME_INPUTS, *, method: str = "reverse") -> int:
    """Assert that ``f`` gives finite values and gradients at every input (each input is one theta).

    Raises ``AssertionError`` naming the first failing input, what was not
    finite (the value, or gradient components by name) and how many inputs
    fail; returns the number of inputs checked.  The default inputs,
    :data:`EXTREME_INPUTS`, are scalars at the float64 edges (+-36.8, +-709.8,
    +-745.2, +-1000, tiny magnitudes).

    >>> import numpy as np, diffkit as dk
    >>> dk.testing.assert_stable(lambda t: dk.nn.softplus(t))
    17
    >>> try:
    ...     dk.testing.assert_stable(lambda t: dk.nn.softplus(t, stable=False))
    ... except AssertionError as err:
    ...     print(str(err).splitlines()[0])
    f is not stable: 3 of 17 inputs give non-finite results; first at input #11 (709.8): value inf, gradient [nan]
    """
    failures = []
    for k, x in enumerate(inputs):
        with np.errstate(all="ignore"):
            r = gradient(f, x, method=method)
        bad = np.flatnonzero(~np.isfinite(r.grad))
        if not np.isfinite(r.value) or bad.size:
            failures.append((k, x, r, bad))
    if failures:
        k, x, r, bad = failures[0]
        shown = ", ".join(f"{r.component_name(int(i))}={r.grad.flat[i]}" for i in bad[:5]) if np.ndim(x) else \
            ", ".join(str(v) for v in r.grad.ravel()[bad])
        raise AssertionError(
            f"f is not stable: {len(failures)} of {len(inputs)} inputs give non-finite results; first at input #{k} "
            f"({np.array2string(np.asarray(x), threshold=6)}): value {r.value}, gradient [{shown}]\n"
            f"  failing inputs: {', '.join(f'#{j}' for j, *_ in failures)}")
    return len(inputs)
