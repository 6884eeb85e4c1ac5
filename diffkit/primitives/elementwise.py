"""Elementwise primitives: arithmetic, powers, logarithms, trigonometric and hyperbolic functions, special functions.

One ``defprim`` per primitive (vocabulary in :mod:`diffkit.primitives.table`).
Rules are exact to rounding over the whole domain where a cheap exact form
exists: ``tanh' = 4e/(1+e)^2`` with ``e = exp(-2|x|)`` where the textbook
``1 - tanh^2`` would lose digits (every digit once tanh rounds to 1, past
|x| ~ 19, and half of them by |x| ~ 3.4; the tape keeps x only there), ``expm1' = exp(x)`` (``ans + 1`` cancels for
x < -1), ``asin' = 1/sqrt((1-x)(1+x))``.

Conventions: ``abs'(0) = 0``; ``maximum``/``minimum`` at a tie send half of
``g`` to each side; ``hypot`` has gradient 0 at the origin; ``clip`` passes the
gradient at its bounds; ``d/dy x**y = 0`` at x = 0; ``lgamma`` is
log|Gamma(x)| (numpy's and SciPy's convention), so it is real for x < 0;
``nextafter(x, y)`` has derivative 1 in x and 0 in y (it moves x by one float64 spacing).
"""
from __future__ import annotations

import math

import mpmath
import numpy as np

from .. import formulas as F
from .lazy import held, special
from .broadcasting import unbroadcast
from .table import SAME, Domain, Unsupported, defprim

_F64 = np.dtype(np.float64)

# (constants in rules come from xp, so that the mpmath referee gets them at its own precision)

POSITIVE = Domain(0.05, 5.0)
UNIT = Domain(-0.95, 0.95)
WIDE = Domain(-30.0, 30.0)  # saturation included: rules are held to relative accuracy there too


def _tie_weight(a, b, xp):
    """1 where a wins, 1/2 at a tie, 0 where b wins (comparisons carry no derivative: plain masks)."""
    return xp.to_float(a > b) + 0.5 * xp.to_float(a == b)


def _real_branch(x, y):
    """The branch the complex step follows at a kink: chosen by the real parts."""
    return np.asarray(x).real >= np.asarray(y).real


def _check_kink(op, at_kink, moving):
    if np.any(at_kink & moving):
        from ..backends import NotAnalyticError
        raise NotAnalyticError(f"{op}: the complex step hit the kink exactly (equal real parts, a perturbation in "
                               f"the imaginary part); the derivative is undefined there. Use method='central' or "
                               f"'reverse'.")


def _complex_abs(x):
    x = np.asarray(x)
    _check_kink("abs", x.real == 0, x.imag != 0)
    return np.where(x.real < 0, -x, x)


def _complex_max2(x, y):
    x, y = np.asarray(x), np.asarray(y)
    _check_kink("maximum", x.real == y.real, x.imag != y.imag)
    return np.where(x.real >= y.real, x, y)


def _complex_min2(x, y):
    x, y = np.asarray(x), np.asarray(y)
    _check_kink("minimum", x.real == y.real, x.imag != y.imag)
    return np.where(x.real <= y.real, x, y)


def _mp_xlogy(x, y):
    return mpmath.mpf(0) if x == 0 else x * mpmath.log(y)


def _power_dy(g, ans, x, xp):
    zero = x == 0  # d/dy x^y = x^y log x, taken as 0 at x = 0 (the limit for y > 0)
    return g * xp.where(zero, 0.0, ans * xp.log(xp.where(zero, 1.0, x)))


def _square_vjp(g, x):
    # 2 g x.  A full reduction's g (sum(W * W), an L2 term) is one number, often as a broadcast view: then
    # x (2 g) is one pass over x instead of two; doubling is exact, so it is the same number as 2 (g x).
    if type(x) is np.ndarray and x.dtype is _F64 and x.size:
        if type(g) is np.ndarray and g.dtype is _F64 and g.shape == x.shape:
            if not any(g.strides):
                return x * (2 * g.reshape(-1)[0])
            c = g * x
            c += c  # (doubled in its own buffer: exact, and one temporary fewer)
            return c
        if type(g) in (float, np.float64):
            return x * (2 * g)
    return 2 * (g * x)  # (g first: a reduction's g is often a broadcast view, slow to scale)


def _hypot_part(g, ans, x, xp):
    return g * (x / xp.where(ans == 0, np.inf, ans))  # at the origin x = 0 and x / inf = 0: gradient 0


def _clip_pass(g, x, lo, hi, xp):
    """g where lo <= x <= hi (the bounds included), 0 outside."""
    if lo is not None:
        g = g * xp.to_float(x >= lo)
    if hi is not None:
        g = g * xp.to_float(x <= hi)
    return g


def _sympy_clip(x, min=None, max=None):
    s = held("Max")(x, min) if min is not None else x
    return held("Min")(s, max) if max is not None else s


def _complex_clip(x, min=None, max=None):
    out = np.asarray(x)
    if min is not None:
        out = np.where(out.real < min, min, out)
    if max is not None:
        out = np.where(out.real > max, max, out)
    return out


def _complex_logaddexp(x, y):
    x, y = np.asarray(x), np.asarray(y)
    hi = x.real >= y.real
    top, low = np.where(hi, x, y), np.where(hi, y, x)
    return top + np.log1p(np.exp(low - top))


def _complex_atan2(y, x):
    # 2 atan(y / (r + x)) with r = sqrt(x^2 + y^2): analytic off the negative real axis of x + iy
    return 2 * np.arctan(np.asarray(y) / (np.sqrt(np.asarray(x) ** 2 + np.asarray(y) ** 2) + x))


def _complex_lgamma(z):
    z = np.asarray(z, dtype=complex)
    return special.loggamma(z) - 1j * special.loggamma(z.real + 0j).imag  # the branch of the real part


def _complex_cbrt(x):
    x = np.asarray(x)
    return np.where(x.real >= 0, x ** (1 / 3), -((-x) ** (1 / 3)))


def _minus_to(g, y_shape, xp):
    """subtract's rule for ``y``: ``-g``, summed to y's shape first where y was broadcast, so that the
    negation touches y's entries only (x - max(x): one pass over g, not two)."""
    shape = getattr(g, "shape", y_shape)
    if shape != y_shape and math.prod(shape) > math.prod(y_shape):  # (a replay's lean g may be the smaller one:
        g = unbroadcast(xp, g, y_shape)  # it is spread later)
    return -g


def _complex_nextafter(x, y):
    """The step on the real parts; x's imaginary part (the complex step's perturbation) rides along: derivative 1."""
    x = np.asarray(x)
    return np.nextafter(x.real, np.asarray(y).real) + 1j * x.imag


def _mp_nextafter(x, y):
    """x moved by the float64 step that nextafter takes at float(x) toward float(y): exactly nextafter at a float64
    x, and derivative 1 in x, 0 in y at mpmath's precision too (the referee's differences see the convention)."""
    fx, fy = float(x), float(y)
    return x + (mpmath.mpf(float(np.nextafter(fx, fy))) - mpmath.mpf(fx))


NO_COMPLEX_POLYGAMMA = Unsupported("SciPy's polygamma takes real arguments only; use method='central' or 'reverse'")

# fmt: off
# --- arithmetic (broadcasting; the tape sums gradients back to each input's shape)
defprim("add", "x y", numpy=np.add, complex=SAME, mpmath=lambda x, y: x + y, sympy=lambda x, y: x + y,
        vjp=(lambda g: g, lambda g: g), jvp="linear", domain=Domain(shapes=(((), ()), ((3,), (3,)), ((2, 3), (3,)))))
defprim("subtract", "x y", numpy=np.subtract, complex=SAME, mpmath=lambda x, y: x - y, sympy=lambda x, y: x - y,
        vjp=(lambda g: g, _minus_to), jvp="linear", domain=Domain(shapes=(((), ()), ((2, 3), (3,)), ((2, 3), (2, 1)),
                                                                     ((3,), ()))))
defprim("multiply", "x y", numpy=np.multiply, complex=SAME, mpmath=lambda x, y: x * y, sympy=lambda x, y: x * y,
        vjp=(lambda g, y: g * y, lambda g, x: g * x), jvp="elementwise",
        domain=Domain(shapes=(((), ()), ((3,), (3,)), ((2, 3), (3,)))))
defprim("divide", "x y", numpy=np.divide, complex=SAME, mpmath=lambda x, y: x / y, sympy=lambda x, y: x / y,
        vjp=(lambda g, y: g / y, lambda g, ans, y: -g * ans / y), aliases=("true_divide",),
        domain=Domain((-3.0, 0.5), (3.0, 3.0), shapes=(((), ()), ((2, 3), (3,)))))
defprim("negative", "x", numpy=np.negative, complex=SAME, mpmath=lambda x: -x, sympy=lambda x: -x,
        vjp=lambda g: -g, jvp="linear")
defprim("positive", "x", numpy=np.positive, complex=SAME, mpmath=lambda x: +x, sympy=lambda x: x,
        vjp=lambda g: g, jvp="linear")
defprim("pow", "x y", numpy=np.power, complex=SAME, mpmath=lambda x, y: x ** y, sympy=lambda x, y: x ** y,
        vjp=(lambda g, x, y: g * y * x ** (y - 1), _power_dy), aliases=("power",),
        convention="d/dy x**y = 0 at x = 0", domain=Domain((0.1, -2.0), (3.0, 2.0), shapes=(((), ()), ((3,), (3,)))))
defprim("maximum", "x y", numpy=np.maximum, complex=_complex_max2, mpmath=max, sympy=held("Max"),
        vjp=(lambda g, x, y, xp: g * _tie_weight(x, y, xp), lambda g, x, y, xp: g * _tie_weight(y, x, xp)),
        convention="a tie sends half of g to each side", domain=Domain(shapes=(((), ()), ((3,), (3,))), kinks=(0.0,)))
defprim("minimum", "x y", numpy=np.minimum, complex=_complex_min2, mpmath=min, sympy=held("Min"),
        vjp=(lambda g, x, y, xp: g * _tie_weight(y, x, xp), lambda g, x, y, xp: g * _tie_weight(x, y, xp)),
        convention="a tie sends half of g to each side", domain=Domain(shapes=(((), ()), ((3,), (3,))), kinks=(0.0,)))
defprim("remainder", "x y", numpy=np.remainder, complex=lambda x, y: x - y * np.floor((np.asarray(x) / y).real),
        mpmath=lambda x, y: x - y * mpmath.floor(x / y), sympy=held("Mod"),
        vjp=(lambda g: g, lambda g, x, y, xp: -g * xp.floor(x / y)), aliases=("mod",),
        convention="away from the jumps at multiples of y", domain=Domain((0.1, 0.7), (3.0, 2.0), shapes=(((), ()),)))
defprim("hypot", "x y", numpy=np.hypot, complex=lambda x, y: np.sqrt(np.asarray(x) ** 2 + np.asarray(y) ** 2),
        mpmath=mpmath.hypot, sympy=lambda x, y: held("sqrt")(x ** 2 + y ** 2),
        vjp=(_hypot_part, lambda g, ans, y, xp: _hypot_part(g, ans, y, xp)), convention="gradient 0 at the origin",
        domain=Domain(shapes=(((), ()), ((3,), (3,)))))
defprim("atan2", "y x", numpy=np.arctan2, complex=_complex_atan2, mpmath=mpmath.atan2, sympy=held("atan2"),
        vjp=(lambda g, x, y, xp: g * (x / xp.hypot(x, y)) / xp.hypot(x, y),
             lambda g, x, y, xp: -g * (y / xp.hypot(x, y)) / xp.hypot(x, y)),
        aliases=("arctan2",), domain=Domain((-3.0, 0.2), (3.0, 3.0), shapes=(((), ()), ((3,), (3,)))))
defprim("logaddexp", "x y", numpy=np.logaddexp, complex=_complex_logaddexp,
        mpmath=lambda x, y: mpmath.log(mpmath.exp(x) + mpmath.exp(y)),
        sympy=lambda x, y: held("log")(held("exp")(x) + held("exp")(y)),
        vjp=(lambda g, ans, x, xp: g * xp.exp(x - ans), lambda g, ans, y, xp: g * xp.exp(y - ans)),
        domain=Domain(-30.0, 30.0, shapes=(((), ()), ((3,), (3,)))))
defprim("xlogy", "x y", numpy=lambda x, y: special.xlogy(x, y), complex=lambda x, y: special.xlogy(x, y),
        mpmath=_mp_xlogy, sympy=lambda x, y: x * held("log")(y),
        vjp=(lambda g, y, xp: g * xp.log(y), lambda g, x, y: g * x / y), convention="xlogy(0, y) = 0",
        domain=Domain((-2.0, 0.1), (2.0, 3.0), shapes=(((), ()), ((3,), (3,)))))
defprim("nextafter", "x y", numpy=np.nextafter, complex=_complex_nextafter, mpmath=_mp_nextafter,
        sympy=Unsupported("nextafter steps to the next float64, which has no meaning for an exact symbolic number"),
        vjp=(lambda g: g, None),
        convention="d/dx = 1, d/dy = 0: the result is x moved by one float64 spacing toward y, a step that is "
                   "constant where it is differentiable (and 0 where x == y)",
        domain=Domain(shapes=(((), ()), ((3,), (3,)), ((2, 3), (3,)))))

# --- powers, exponentials and logarithms
defprim("exp", "x", numpy=np.exp, complex=SAME, mpmath=mpmath.exp, sympy=held("exp"), vjp=lambda g, ans: g * ans)
defprim("exp2", "x", numpy=np.exp2, complex=SAME, mpmath=lambda x: mpmath.mpf(2) ** x, sympy=lambda x: 2 ** x,
        vjp=lambda g, ans, xp: g * ans * xp.log(xp.asarray(2.0)))
defprim("expm1", "x", numpy=np.expm1, complex=SAME, mpmath=mpmath.expm1, sympy=lambda x: held("exp")(x) - 1,
        vjp=lambda g, x, xp: g * xp.exp(x), domain=WIDE)
defprim("log", "x", numpy=np.log, complex=SAME, mpmath=mpmath.log, sympy=held("log"), vjp=lambda g, x: g / x,
        domain=POSITIVE)
defprim("log1p", "x", numpy=np.log1p, complex=SAME, mpmath=mpmath.log1p, sympy=lambda x: held("log")(1 + x),
        vjp=lambda g, x: g / (1 + x), domain=Domain(-0.9, 5.0))
defprim("log2", "x", numpy=np.log2, complex=SAME, mpmath=lambda x: mpmath.log(x, 2), sympy=lambda x: held("log")(x, 2),
        vjp=lambda g, x, xp: g / (x * xp.log(xp.asarray(2.0))), domain=POSITIVE)
defprim("log10", "x", numpy=np.log10, complex=SAME, mpmath=mpmath.log10, sympy=lambda x: held("log")(x, 10),
        vjp=lambda g, x, xp: g / (x * xp.log(xp.asarray(10.0))), domain=POSITIVE)
defprim("sqrt", "x", numpy=np.sqrt, complex=SAME, mpmath=mpmath.sqrt, sympy=held("sqrt"),
        vjp=lambda g, ans: g * 0.5 / ans, domain=POSITIVE)
defprim("cbrt", "x", numpy=np.cbrt, complex=_complex_cbrt, mpmath=mpmath.cbrt, sympy=held("cbrt"),
        vjp=lambda g, ans: g / (3 * ans * ans), domain=POSITIVE)
defprim("square", "x", numpy=np.square, complex=SAME, mpmath=lambda x: x * x, sympy=lambda x: x ** 2,
        vjp=_square_vjp)
defprim("reciprocal", "x", numpy=np.reciprocal, complex=SAME, mpmath=lambda x: 1 / x, sympy=lambda x: 1 / x,
        vjp=lambda g, ans: -g * ans * ans, domain=Domain(0.2, 4.0))
defprim("abs", "x", numpy=np.abs, complex=_complex_abs, mpmath=abs, sympy=held("Abs"),
        vjp=lambda g, x, xp: g * xp.sign(x), aliases=("absolute",), convention="abs'(0) = 0", domain=Domain(kinks=(0.0,)))
defprim("clip", "x", params={"min": None, "max": None}, numpy=lambda x, min=None, max=None: np.clip(x, min, max),
        complex=_complex_clip,
        mpmath=lambda x, min=None, max=None: x if (min is None or x >= min) and (max is None or x <= max)
        else (mpmath.mpf(min) if min is not None and x < min else mpmath.mpf(max)),
        sympy=_sympy_clip, vjp=lambda g, x, min, max, xp: _clip_pass(g, x, min, max, xp),
        convention="the gradient passes at the bounds (x == min or x == max)",
        domain=Domain(params=({"min": -1.0, "max": 1.0}, {"min": 0.0}), kinks=(-1.0, 1.0)))

# --- trigonometric and hyperbolic
defprim("sin", "x", numpy=np.sin, complex=SAME, mpmath=mpmath.sin, sympy=held("sin"),
        vjp=lambda g, x, xp: g * xp.cos(x))
defprim("cos", "x", numpy=np.cos, complex=SAME, mpmath=mpmath.cos, sympy=held("cos"),
        vjp=lambda g, x, xp: -g * xp.sin(x))
defprim("tan", "x", numpy=np.tan, complex=SAME, mpmath=mpmath.tan, sympy=held("tan"),
        vjp=lambda g, ans: g * (1 + ans * ans), domain=Domain(-1.4, 1.4))
defprim("asin", "x", numpy=np.arcsin, complex=SAME, mpmath=mpmath.asin, sympy=held("asin"),
        vjp=lambda g, x, xp: g / xp.sqrt((1 - x) * (1 + x)), aliases=("arcsin",), domain=UNIT)
defprim("acos", "x", numpy=np.arccos, complex=SAME, mpmath=mpmath.acos, sympy=held("acos"),
        vjp=lambda g, x, xp: -g / xp.sqrt((1 - x) * (1 + x)), aliases=("arccos",), domain=UNIT)
defprim("atan", "x", numpy=np.arctan, complex=SAME, mpmath=mpmath.atan, sympy=held("atan"),
        vjp=lambda g, x: g / (1 + x * x), aliases=("arctan",), domain=WIDE)
defprim("sinh", "x", numpy=np.sinh, complex=SAME, mpmath=mpmath.sinh, sympy=held("sinh"),
        vjp=lambda g, x, xp: g * xp.cosh(x))
defprim("cosh", "x", numpy=np.cosh, complex=SAME, mpmath=mpmath.cosh, sympy=held("cosh"),
        vjp=lambda g, x, xp: g * xp.sinh(x))
defprim("tanh", "x", kind="array", residual=True, numpy=F.tanh_parts, value=np.tanh, complex=lambda x: (np.tanh(x), x),
        mpmath=lambda x: (_MP_TANH(x), x), sympy=lambda x: (np.frompyfunc(held("tanh"), 1, 1)(x), x),
        vjp=F.tanh_vjp, jvp="elementwise", domain=WIDE,
        doc="tanh' = 1 - a**2 from the output a where that keeps 13 digits, and 4e/(1+e)^2 with "
            "e = exp(-2|x|) at the saturated entries, whose x alone the tape keeps (diffkit.formulas.tanh_parts)")
defprim("asinh", "x", numpy=np.arcsinh, complex=SAME, mpmath=mpmath.asinh, sympy=held("asinh"),
        vjp=lambda g, x, xp: g / xp.hypot(1.0, x), aliases=("arcsinh",), domain=WIDE)
defprim("acosh", "x", numpy=np.arccosh, complex=SAME, mpmath=mpmath.acosh, sympy=held("acosh"),
        vjp=lambda g, x, xp: g / xp.sqrt((x - 1) * (x + 1)), aliases=("arccosh",), domain=Domain(1.05, 6.0))
defprim("atanh", "x", numpy=np.arctanh, complex=SAME, mpmath=mpmath.atanh, sympy=held("atanh"),
        vjp=lambda g, x: g / ((1 - x) * (1 + x)), aliases=("arctanh",), domain=UNIT)

# --- special functions (SciPy is numpy's well-kept home for these)
defprim("erf", "x", numpy=lambda x: special.erf(x), complex=lambda x: special.erf(x), mpmath=mpmath.erf,
        sympy=held("erf"), vjp=lambda g, x, xp: g * (2 / xp.sqrt(xp.asarray(xp.pi))) * xp.exp(-x * x))
defprim("erfc", "x", numpy=lambda x: special.erfc(x), complex=lambda x: special.erfc(x), mpmath=mpmath.erfc,
        sympy=held("erfc"), vjp=lambda g, x, xp: -g * (2 / xp.sqrt(xp.asarray(xp.pi))) * xp.exp(-x * x))
defprim("lgamma", "x", numpy=lambda x: special.gammaln(x), complex=_complex_lgamma,
        mpmath=lambda x: mpmath.re(mpmath.loggamma(x)), sympy=held("loggamma"),
        vjp=lambda g, x, xp: g * xp.digamma(x), aliases=("gammaln",),
        convention="log|Gamma(x)|, real for negative non-integer x", domain=Domain(0.1, 8.0))
defprim("digamma", "x", numpy=lambda x: special.psi(x), complex=lambda x: special.psi(x), mpmath=mpmath.digamma,
        sympy=held("digamma"), vjp=lambda g, x, xp: g * xp.polygamma(1, x), aliases=("psi",), domain=Domain(0.1, 8.0))
defprim("polygamma", "x", params={"n": 0}, api=lambda n, x: ((x,), {"n": n}),
        numpy=lambda x, n=0: special.polygamma(n, x), complex=NO_COMPLEX_POLYGAMMA,
        mpmath=lambda x, n=0: mpmath.polygamma(n, x), sympy=lambda x, n=0: held("polygamma")(n, x),
        vjp=lambda g, x, n, xp: g * xp.polygamma(n + 1, x), domain=Domain(0.2, 8.0, params=({"n": 1}, {"n": 2})))
# fmt: on


_MP_TANH = np.frompyfunc(mpmath.tanh, 1, 1)

