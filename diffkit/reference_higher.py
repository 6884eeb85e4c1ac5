"""The referee for Jacobians and second derivatives: 50-digit mpmath values, each certified.

``reference_jacobian``, ``reference_hvp`` and ``reference_hessian`` run the
user's function on mpmath arrays through the same engine as everything else
(forward-mode duals over mpmath values, forward-over-reverse for H v), then
certify the result by a route that uses no second-order rule at all:

* a Jacobian by central differences of f itself at ``2 * digits + 20`` digits,
  along random directions and each coordinate (P <= ``max_coordinates``);
* a Hessian-vector product by central differences of the *certified gradient*
  (:func:`diffkit.reference` certifies the reverse-mode gradient first), the
  gradient evaluated at ``2 * digits + 20`` digits at theta +- h v;
* a Hessian by the same differences along random directions and every column.

Agreement below ``floor`` (default ``digits - 10``) raises
:class:`~diffkit.CertificationError`.

>>> import numpy as np, diffkit as dk, mpmath
>>> ref = dk.reference_hessian(lambda t: t[0] ** 3 * t[1], np.array([2.0, 1.0]), digits=30)
>>> ref.hessian.tolist()                  # [[6 t0 t1, 3 t0^2], [3 t0^2, 0]]
[[12.0, 12.0], [12.0, 0.0]]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import mpmath
import numpy as np

from .backends import to_mp
from .forward import gradient_of
from .methods import resolve
from .reference import GUARD_DIGITS, Certification, CertificationError, reference
from .tape import jvp

__all__ = ["reference_jacobian", "reference_hvp", "reference_hessian", "HigherReference"]


@dataclass
class HigherReference:
    """``mp``: the result as an object array of ``mpmath.mpf`` (``kind`` says which); float64 roundings below."""

    kind: str  # "jacobian" | "hvp" | "hessian"
    mp: np.ndarray
    digits: int
    certification: Certification | None
    value_mp: Any = None

    @property
    def array(self) -> np.ndarray:
        return np.array([float(x) for x in self.mp.flat], dtype=float).reshape(self.mp.shape)

    jacobian = hvp = hessian = array


def _mp_array(x: Any, shape: tuple) -> np.ndarray:
    out = np.array(np.broadcast_to(np.asarray(x, dtype=object), shape), dtype=object)
    out.flat[:] = [mpmath.mpf(v) for v in out.flat]
    return out


def _norm(x) -> Any:
    return mpmath.sqrt(mpmath.fsum(v * v for v in np.ravel(x)))


def _digits(err: Any, scale: Any, digits: int) -> float:
    return float(-mpmath.log10(err / scale)) if err > 0 else float(2 * digits)


def _directions(arr: np.ndarray, directions: int, max_coordinates: int, seed: int, names: Callable):
    rng = np.random.default_rng(seed)
    for k in range(directions):
        yield f"random direction {k}", rng.standard_normal(arr.shape)
    if arr.size <= max_coordinates:
        for i in range(arr.size):
            e = np.zeros(arr.shape)
            e.flat[i] = 1.0
            yield names(i), e


def _check(results: list, directions: int, coordinates: int, digits: int, floor: float, what: str) -> Certification:
    worst, where = min(results) if results else (float(digits), "")
    cert = Certification(directions, coordinates, min(worst, float(digits)), floor, where)
    if cert.agreement_digits < floor:
        raise CertificationError(
            f"the reference {what} failed its certification: along {where}, the engine's value and high-precision "
            f"central differences agree to only {cert.agreement_digits:.1f} digits (floor {floor}). A JVP rule in "
            f"diffkit.primitives may be wrong, or theta sits on a kink of f; pass certify=False to accept it")
    return cert


def reference_jacobian(f: Any, theta: Any = None, digits: int = 50, *, certify: bool = True, directions: int = 3,
                       max_coordinates: int = 200, floor: float | None = None, seed: int = 0) -> HigherReference:
    """The Jacobian of a vector f (shape ``f.shape + theta.shape``) by P forward-mode passes in mpmath."""
    fn, arr, names = resolve(f, theta)
    with mpmath.workdps(digits + GUARD_DIGITS):
        tm = to_mp(arr)
        value = np.asarray(fn(tm), dtype=object)
        cols = [_mp_array(jvp(fn, tm, to_mp(e))[1], value.shape).ravel()
                for _, e in _directions(arr, 0, arr.size, seed, names)]
        J = np.array(cols, dtype=object).T.reshape(value.shape + arr.shape)
    cert = None
    if certify:
        results = []
        Jflat = J.reshape(value.size, arr.size)
        with mpmath.workdps(2 * digits + 20):
            h = mpmath.mpf(10) ** -(digits // 2 + 10)
            scale0 = _norm(Jflat)
            for where, v in _directions(arr, directions, max_coordinates, seed, names):
                vm, tm = to_mp(v), to_mp(arr)
                fd = (np.asarray(fn(tm + h * vm), dtype=object) - np.asarray(fn(tm - h * vm), dtype=object)) / (2 * h)
                Jv = Jflat.dot(vm.ravel())
                err = _norm(fd.ravel() - Jv)
                scale = max(scale0 * _norm(vm), mpmath.mpf(10) ** -digits)
                results.append((_digits(err, scale, digits), where))
        cert = _check(results, directions, arr.size if arr.size <= max_coordinates else 0, digits,
                      digits - 10 if floor is None else floor, "Jacobian")
    return HigherReference("jacobian", J, digits, cert, value)


def _mp_hvp(fn: Callable, tm: np.ndarray, vm: np.ndarray) -> np.ndarray:
    return _mp_array(jvp(lambda t: gradient_of(fn, t), tm, vm)[1], tm.shape)


def _fd_of_gradient(fn: Callable, arr: np.ndarray, v: np.ndarray, digits: int) -> np.ndarray:
    """(grad(theta + h v) - grad(theta - h v)) / 2h at 2 * digits + 20 digits, from reverse-mode gradients."""
    h = mpmath.mpf(10) ** -(digits // 2 + 10)
    tm, vm = to_mp(arr), to_mp(v)
    plus = _mp_array(gradient_of(fn, tm + h * vm), arr.shape)
    minus = _mp_array(gradient_of(fn, tm - h * vm), arr.shape)
    return (plus - minus) / (2 * h)


def _agreement(fn, arr, v, Hv, grad_scale, digits) -> float:
    with mpmath.workdps(2 * digits + 20):
        fd = _fd_of_gradient(fn, arr, v, digits)
        scale = max(_norm(Hv), grad_scale * mpmath.mpf(10) ** -digits, mpmath.mpf(10) ** (-2 * digits))
        return _digits(_norm(fd - Hv), scale, digits)


def reference_hvp(f: Any, theta: Any = None, v: Any = None, digits: int = 50, *, certify: bool = True,
                  floor: float | None = None) -> HigherReference:
    """H(theta) v at ``digits`` digits (forward-over-reverse in mpmath), certified by differences of the gradient."""
    fn, arr, names = resolve(f, theta)
    v = np.asarray(v, dtype=float)
    if v.shape != arr.shape:
        raise ValueError(f"the direction v has shape {v.shape}; theta has shape {arr.shape}: they must match")
    grad_ref = reference(fn, arr, digits, certify=certify)  # certifies the gradient first
    with mpmath.workdps(digits + GUARD_DIGITS):
        Hv = _mp_hvp(fn, to_mp(arr), to_mp(v))
    cert = None
    if certify:
        d = _agreement(fn, arr, v, Hv, _norm(grad_ref.grad_mp), digits)
        cert = _check([(d, "v")], 1, 0, digits, digits - 10 if floor is None else floor, "Hessian-vector product")
    return HigherReference("hvp", Hv, digits, cert, grad_ref.value_mp)


def reference_hessian(f: Any, theta: Any = None, digits: int = 50, *, certify: bool = True, directions: int = 2,
                      max_coordinates: int = 200, floor: float | None = None, seed: int = 0) -> HigherReference:
    """The Hessian at ``digits`` digits: P forward-over-reverse HVPs in mpmath, certified column by column."""
    fn, arr, names = resolve(f, theta)
    grad_ref = reference(fn, arr, digits, certify=certify)
    P = arr.size
    with mpmath.workdps(digits + GUARD_DIGITS):
        tm = to_mp(arr)
        cols = [_mp_hvp(fn, tm, to_mp(e)).ravel() for _, e in _directions(arr, 0, P, seed, names)]
        H = np.array(cols, dtype=object).T
    cert = None
    if certify:
        gscale, results = _norm(grad_ref.grad_mp), []
        for where, v in _directions(arr, directions, max_coordinates, seed, names):
            with mpmath.workdps(2 * digits + 20):
                Hv = H.dot(to_mp(v).ravel())
            results.append((_agreement(fn, arr, v, Hv, gscale, digits), where))
        cert = _check(results, directions, P if P <= max_coordinates else 0, digits,
                      digits - 10 if floor is None else floor, "Hessian")
    return HigherReference("hessian", H.reshape(arr.shape * 2), digits, cert, grad_ref.value_mp)
