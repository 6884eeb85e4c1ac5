"""``dk.error``: how many digits of a gradient are right.

Relative error uses a *safe denominator*: component i is compared with
``max(|ref_i|, rel_floor * max_j |ref_j|)``, so a component that is zero or
tiny is judged against the scale of the whole gradient instead of dividing by
zero (``rel_floor`` defaults to 1e-8).  When the whole reference is zero the
denominator is 1, i.e. the error is absolute.

Correct digits are ``-log10(relative error)``, clipped to [0, 16]; an exact
match counts as 16.  The headline ``digits`` is the worst component among the
*significant* ones (those with ``|ref_i| >= rel_floor * max |ref|``).
"""
from __future__ import annotations

from dataclasses import dataclass

import mpmath
import numpy as np

__all__ = ["error", "ErrorReport", "MAX_DIGITS", "correct_digits"]

MAX_DIGITS = 16.0


def correct_digits(rel):
    """-log10 of a relative error, clipped to [0, 16] (0 error counts as 16, nan or inf as 0).

    >>> correct_digits(1e-12), correct_digits(0.0), correct_digits(float("nan"))
    (12.0, 16.0, 0.0)
    """
    rel = np.where(np.isnan(rel), np.inf, rel)
    with np.errstate(divide="ignore"):
        digits = np.clip(-np.log10(rel), 0.0, MAX_DIGITS) + 0.0  # + 0.0 turns -0.0 into 0.0
    return float(digits) if np.ndim(digits) == 0 else digits


@dataclass
class ErrorReport:
    max_abs: float
    max_rel: float
    digits: float
    component_digits: np.ndarray
    significant: np.ndarray
    worst_index: int
    worst_name: str
    worst_value: float
    worst_reference: float

    @property
    def median_digits(self) -> float:
        return float(np.median(self.component_digits[self.significant]))

    def __str__(self) -> str:
        return (f"max abs error {self.max_abs:.3g}, max rel error {self.max_rel:.3g}, "
                f"{self.digits:.1f} correct digits (median {self.median_digits:.1f}); "
                f"worst {self.worst_name}: {self.worst_value:.17g} vs {self.worst_reference:.17g}")


def _grad_and_names(obj):
    grad = getattr(obj, "grad_mp", None)
    if grad is None:
        grad = getattr(obj, "grad", obj)
    namer = getattr(obj, "component_name", None)
    return np.asarray(grad), namer


def error(result, ref, *, rel_floor: float = 1e-8) -> ErrorReport:
    """Compare a gradient (a GradientResult or an array) with a reference (a Reference, result or array).

    Against an mpmath :class:`~diffkit.reference.Reference` the differences
    are taken exactly, in mpmath, before rounding.

    >>> import numpy as np, diffkit as dk
    >>> e = dk.error(np.array([1.0, 2.0 + 2e-12]), np.array([1.0, 2.0]))
    >>> round(e.digits, 1), e.worst_name
    (12.0, 'theta[1]')
    """
    g, namer = _grad_and_names(result)
    r, ref_namer = _grad_and_names(ref)
    namer = namer or ref_namer
    if g.shape != r.shape:
        raise ValueError(f"gradient shape {g.shape} does not match the reference's {r.shape}")
    if r.dtype == object:  # exact difference in mpmath, then round once
        diff = np.array([float(abs(mpmath.mpf(float(a)) - b)) for a, b in zip(g.astype(float).flat, r.flat)])
        r = np.array([float(v) for v in r.flat])
    else:
        diff = np.abs(g.astype(float).ravel() - r.astype(float).ravel())
        r = r.astype(float).ravel()
    scale = np.max(np.abs(r)) if r.size else 0.0
    floor = rel_floor * scale if scale > 0 else 1.0
    denom = np.maximum(np.abs(r), floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(np.isnan(diff), np.inf, diff / denom)
    digits = correct_digits(rel)
    significant = np.abs(r) >= floor
    if not significant.any():
        significant = np.ones_like(significant)
    masked = np.where(significant, rel, -1.0)
    worst = int(np.argmax(masked))
    name = namer(worst) if namer else f"theta[{worst}]"
    return ErrorReport(
        max_abs=float(np.max(diff)), max_rel=float(np.max(rel)), digits=float(np.min(digits[significant])),
        component_digits=digits, significant=significant, worst_index=worst, worst_name=name,
        worst_value=float(g.ravel()[worst]), worst_reference=float(r[worst]),
    )
