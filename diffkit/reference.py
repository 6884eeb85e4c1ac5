"""The referee: the same function in mpmath at 50+ digits, and its self-certification.

:func:`reference` runs the user's function on arrays of ``mpmath.mpf`` and
differentiates it with the tape's own rules (:mod:`diffkit.primitives`) at
``digits`` significant digits.  Reusing those rules would make a wrong rule a
single point of failure, so the result is then *certified* by an independent
route that uses no derivative rule at all: central differences of the forward
function alone, at twice the precision, along random directions and (for
P <= 200) along every coordinate.  If they disagree with the tape's gradient
by more than the stated floor, :class:`CertificationError` is raised.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import mpmath
import numpy as np

from .backends import MP, to_mp
from .methods import check_scalar, resolve
from .problems import check_int, check_real

MAX_DIGITS = 2000  # 2 * 2000 + 20 working digits: already seconds per operation on large problems
from .tape.gradient import tape_gradient

__all__ = ["reference", "Reference", "Certification", "CertificationError"]

GUARD_DIGITS = 10  # extra working digits so that the returned ``digits`` are all correct


class CertificationError(ArithmeticError):
    """The high-precision finite differences disagree with the tape's gradient."""


@dataclass
class Certification:
    """How the reference checked itself: counts of checks and the worst agreement in digits."""

    directions: int
    coordinates: int
    agreement_digits: float
    floor: float
    worst: str = ""


@dataclass
class Reference:
    """``value`` and ``grad`` to ``digits`` digits (mpmath), and their float64 roundings."""

    value_mp: Any
    grad_mp: np.ndarray
    digits: int
    certification: Certification | None
    names: Callable[[int], str] = field(repr=False, default=None)

    @property
    def value(self) -> float:
        return float(self.value_mp)

    @property
    def grad(self) -> np.ndarray:
        return np.array([float(v) for v in self.grad_mp.flat]).reshape(self.grad_mp.shape)

    def component_name(self, i: int) -> str:
        return self.names(i)


def _scalar(out: Any) -> Any:
    value = np.reshape(np.asarray(out, dtype=object), ())[()]
    if isinstance(value, mpmath.mpc):
        if value.imag != 0:
            raise ValueError(f"f evaluated to the complex number {value} in mpmath: its real domain was left "
                             f"(a log or sqrt of a negative number?)")
        value = value.real
    return mpmath.mpf(value)


def reference(f: Any, theta: Any = None, digits: int = 50, *, certify: bool = True, directions: int = 3,
              max_coordinates: int = 200, floor: float | None = None, seed: int = 0) -> Reference:
    """Value and gradient of ``f`` at ``theta`` in mpmath, correct to ``digits`` digits.

    Certification (``certify=True``) compares the gradient with central
    differences of f at ``2 * digits + 20`` digits, along ``directions``
    random Gaussian directions and, when P <= ``max_coordinates``, along each
    coordinate.  Agreement is measured in digits relative to ``|grad| |v|``;
    below ``floor`` (default ``digits - 10``) it raises
    :class:`CertificationError`.  At a kink (relu at exactly 0) the
    differences see the two-sided average, so certification fails there:
    pass ``certify=False`` to accept the documented kink convention.

    >>> import numpy as np, diffkit as dk
    >>> import mpmath
    >>> ref = dk.reference(lambda t: dk.nn.tanh(t[0]) * t[1], np.array([0.5, 2.0]), digits=30)
    >>> mpmath.nstr(ref.grad_mp[0], 20)      # 2 (1 - tanh(0.5)^2)
    '1.5728954659318548203'
    """
    fn, arr, names = resolve(f, theta)
    check_int("digits", digits, 15, " (at least 15 to referee float64 results)")
    check_int("directions", directions, 0, " (random directions of the certification)")
    check_int("max_coordinates", max_coordinates, 0, " (certify every coordinate when P is at most this)")
    check_int("seed", seed, 0, " (of the certification's random directions)")
    if not isinstance(certify, (bool, np.bool_)):
        raise TypeError(f"certify must be True or False; got {type(certify).__name__} {certify!r:.40}")
    if floor is not None:
        check_real("floor", floor, None, " (digits of agreement the certification needs)")
    if digits > MAX_DIGITS:
        raise ValueError(f"digits must be at most {MAX_DIGITS}: mpmath's cost grows faster than the digits (the "
                         f"certification works at 2 * digits + 20); got {digits}")
    with mpmath.workdps(digits + GUARD_DIGITS):
        value, grad, *_ = tape_gradient(fn, to_mp(arr), vxp=MP, one=mpmath.mpf(1), check=check_scalar)
        value = _scalar(value)
        grad = np.array(np.broadcast_to(grad, arr.shape), dtype=object)
        grad.flat[:] = [mpmath.mpf(v) for v in grad.flat]
    cert = _certify(fn, arr, grad, digits, directions, max_coordinates,
                    digits - 10 if floor is None else floor, seed, names) if certify else None
    return Reference(value, grad, digits, cert, names)


def _certify(fn, arr, grad, digits, directions, max_coordinates, floor, seed, names) -> Certification:
    rng = np.random.default_rng(seed)
    P = arr.size
    worst, worst_what = np.inf, ""
    coords = range(P) if P <= max_coordinates else range(0)
    with mpmath.workdps(2 * digits + 20):
        theta = to_mp(arr)
        h = mpmath.mpf(10) ** -(digits // 2 + 10)
        gnorm = mpmath.sqrt(mpmath.fsum(g * g for g in grad.flat))
        tiny = mpmath.mpf(10) ** -digits

        def agreement(v, what):
            nonlocal worst, worst_what
            fd = (_scalar(fn(theta + h * v)) - _scalar(fn(theta - h * v))) / (2 * h)
            gv = mpmath.fdot(grad.flat, v.flat)
            vnorm = mpmath.sqrt(mpmath.fsum(x * x for x in v.flat))
            err = abs(fd - gv) / max(gnorm * vnorm, tiny)
            d = float(-mpmath.log10(err)) if err > 0 else float(2 * digits)
            if d < worst:
                worst, worst_what = d, what
        for k in range(directions):
            agreement(to_mp(rng.standard_normal(arr.shape)), f"random direction {k}")
        for i in coords:
            e = np.zeros(arr.size)
            e[i] = 1.0
            agreement(to_mp(e.reshape(arr.shape)), names(i))
    cert = Certification(directions, len(coords), min(worst, float(digits)), floor, worst_what)
    if cert.agreement_digits < floor:
        raise CertificationError(
            f"reference failed its certification: along {worst_what}, the tape's rules and high-precision central "
            f"differences agree to only {cert.agreement_digits:.1f} digits (floor {floor}). Either a derivative rule "
            f"in diffkit.primitives (or a custom op) is wrong, or theta sits on a kink of f; pass certify=False to "
            f"accept the kink conventions"
        )
    return cert
