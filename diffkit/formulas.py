"""The activations and costs of the seeds, written once against the array namespace.

Each formula takes arrays of any backend and asks :func:`diffkit.namespace`
for their ops.  The *stable* formulas are the ones seed 002 argues for; the
*naive* ones are the lectures' textbook forms, kept so that the stability
study can show where they break.  Public entry points with docstrings live in
:mod:`diffkit.nn`; the tape's fused versions (which run these same formulas
forward and carry an exact derivative rule) live in :mod:`diffkit.primitives.nn`.

Costs take a batch of rows, ``z`` of shape (m, K), and return the mean over
the m examples.  A 1-D ``z`` is one example.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from .dispatch import namespace



def batch_size(z) -> int:
    """Number of examples m in a batch of rows (1 for a single 1-D example)."""
    return rows(z.shape if hasattr(z, "shape") else ())


def rows(shape: tuple) -> int:
    """The m of :func:`batch_size`, from a shape."""
    return shape[0] if len(shape) >= 2 else 1


# --- stable forms ------------------------------------------------------------------------

TANH_SATURATED = 1 - 2.0 ** -9  # past |tanh| = this (|x| > 3.47), 1 - a**2 keeps fewer than 13 digits
TANH_SCREEN = 3.465  # |x| <= this gives |tanh x| < TANH_SATURATED for sure (atanh(TANH_SATURATED) = 3.46525)


def tanh_parts(x):
    """``(tanh(x), what its derivative needs beside the output)``: tanh's forward as the tape records it.

    ``sech^2 = 1 - a**2`` from the output ``a`` is exact to ~1e-13 relative while
    ``|a| <= TANH_SATURATED`` (the rounding of ``a`` is divided by ``1 - |a|``); past that it
    would lose every digit by |x| ~ 19.  So the residual keeps ``x`` only at the saturated
    entries, as ``(flat indices, x there)``, ``None`` when there are none: a healthy network
    keeps nothing beside the outputs the next layer keeps anyway.  Arrays of another library
    keep ``(None, x)``: the same formulas, entry by entry, by ``where``; traces,
    mpmath, complex values and scalars keep all of ``x``: the exact rule everywhere.
    """
    if type(x) is np.ndarray and x.dtype == np.float64 and x.ndim:
        a = np.tanh(x)
        if not x.size:
            return a, None
        if x.size <= 32:  # a few entries as Python floats: two numpy reductions would cost 4x the tanh itself
            values = x.ravel().tolist()  # (max/min of a list may skip a NaN: the scan below would pass it too)
            high, low = max(values) <= TANH_SCREEN, min(values) >= -TANH_SCREEN
        else:
            high, low = np.maximum.reduce(x, None) <= TANH_SCREEN, np.minimum.reduce(x, None) >= -TANH_SCREEN
        if high and low:
            return a, None  # (two reductions, no temporary; a NaN fails both tests and takes the scan below)
        # one side past the screen (a layer saturating one way) is one comparison; both, or a NaN, the |a| scan
        past = a > TANH_SATURATED if low else a < -TANH_SATURATED if high else np.abs(a) > TANH_SATURATED
        flat = past.reshape(-1).nonzero()[0]  # (np.flatnonzero, without its Python wrappers; a NaN is not
        # saturated: its rule gives NaN anyway)
        return a, ((flat, x.take(flat)) if flat.size else None)
    if type(x).__module__.startswith("diffkit"):  # a trace: its own tanh, recorded
        return namespace(x).tanh(x), x
    if hasattr(x, "__array_namespace__") and not isinstance(x, (np.ndarray, np.generic)):  # CuPy, array API
        return x.__array_namespace__().tanh(x), (None, x)  # (no data-dependent test: JAX may be tracing)
    return np.tanh(x), x


def tanh_slope(ans, res, xp):
    """``tanh'`` from :func:`tanh_parts`' output and residual, exact to ~1e-13 relative at every x."""
    if res is None:
        return _one_minus_square(ans)
    if type(res) is not tuple:  # all of x kept
        return sech2(res, xp)
    flat, x = res
    if flat is None:  # another array library: the same values as numpy's, entry by entry
        return xp.where(xp.abs(ans) > TANH_SATURATED, sech2(x, xp), _one_minus_square(ans))
    slope = _one_minus_square(ans)
    if type(slope) is np.ndarray:
        # a few saturated entries (the usual case) in Python floats: seven numpy calls on a tiny array cost more
        slope.put(flat, [sech2(v, _FLOATS) for v in x.tolist()] if flat.size <= 16 else sech2(x, np))
    else:  # numpy's residual on another library's arrays: the same entries, found again (C order, as flat)
        slope[xp.abs(ans) > TANH_SATURATED] = sech2(x, xp)
    return slope


def _one_minus_square(a):
    """``1 - a**2``, in one buffer of its own on numpy.

    Up to the saturation screen (``|a| <= TANH_SATURATED``) it is within 5.3e-14 relative of ``sech^2 x``
    (against mpmath on 23,000 points, densest near the screen): there ``1 - a**2 >= 2**-8``, so the
    rounding of ``a = tanh x`` alone moves it by a few 1e-14.  ``(1 - a)(1 + a)``, exact for the rounded
    ``a``, is within 4.1e-14, no better in digits, and takes two more passes.  Past the screen: sech^2.
    """
    if type(a) is np.ndarray:
        slope = a * a
        np.subtract(1.0, slope, out=slope)
        return slope
    return 1 - a * a


def tanh_vjp(g, ans, res, xp):
    """``g * tanh'``: the rule of the table's tanh (:func:`tanh_slope`), the product taken in the slope's own
    buffer when both are float64 arrays of one shape."""
    slope = tanh_slope(ans, res, xp)
    if type(g) is np.ndarray and type(slope) is np.ndarray and g.shape == slope.shape and g.dtype == slope.dtype:
        slope *= g  # (slope is a new array of ours; g * slope and slope * g are the same product)
        return slope
    return g * slope


_FLOATS = SimpleNamespace(abs=abs, exp=math.exp)  # what sech2 calls, for one Python float


def sech2(x, xp):
    """``sech^2 x = 4e/(1+e)^2`` with ``e = exp(-2|x|)``: exact to rounding at every x, saturation included."""
    e = xp.exp(-2 * xp.abs(x))
    return 4 * e / ((1 + e) * (1 + e))


def affine(x, w, b):
    # a dense layer acting on rows, x W + b, with W of shape fan_in x fan_out (seed 004's layout)
    return x @ w + b


def sum_of_squares(x):
    # sum of x_i^2 as one dot product: one pass, where sum(x * x) makes a temporary the size of x
    v = namespace(x).reshape(x, (-1,))
    return v @ v


def sigmoid(x):
    # exp(-|x|) never overflows; the two branches are the same function rearranged
    xp = namespace(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def log_sigmoid(x):
    # log sigma(x) = min(x, 0) - log(1 + e^{-|x|})
    xp = namespace(x)
    return xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))


def softplus(x):
    # log(1 + e^x) = max(x, 0) + log(1 + e^{-|x|})   (seed 002)
    xp = namespace(x)
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


def relu(x):
    xp = namespace(x)
    return xp.where(x >= 0, x, 0.0)


def leaky_relu(x, alpha=0.01):
    xp = namespace(x)
    return xp.where(x >= 0, x, alpha * x)


def _lse_parts(x, axis):
    """Split logsumexp(x) = m + L with m the max and L = log1p(sum of exp(x - m) over the non-max entries).

    Taking the max's own 1 out of the sum and using log1p keeps L accurate when the other entries are
    negligible (Blanchard, Higham and Higham 2021), so that x - lse stays accurate at the max, where the
    cross-entropy's gradient y_hat - 1 lives.  An all -inf slice gives m = 0, L = log1p(-1) = -inf.
    Returns ``(m, L, x - m)``: log_softmax reuses the shifted x.
    """
    xp = namespace(x)
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    shifted = x - m
    is_max = shifted == 0
    rest = xp.sum(xp.where(is_max, 0, xp.exp(shifted)), axis=axis, keepdims=True)
    ties = xp.sum(_as_float(xp, is_max), axis=axis, keepdims=True) - 1  # other maxima: each adds exactly 1
    return m, xp.log1p(rest + ties), shifted


def _as_float(xp, mask):
    """A mask as 0/1 floats: diffkit's namespaces cast (the array API sums no booleans); peers sum them."""
    return xp.to_float(mask) if getattr(type(xp), "from_table", False) else mask


def logsumexp(x, axis=-1, keepdims=False):
    # max-shift (seed 002); an all -inf slice gives -inf, not nan
    xp = namespace(x)
    m, L, _ = _lse_parts(x, axis)
    out = m + L
    return out if keepdims else xp.reshape(out, _drop(out.shape, axis))


def softmax(x, axis=-1):
    xp = namespace(x)
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    _, L, shifted = _lse_parts(x, axis)
    return shifted - L


def binary_cross_entropy(z, y):
    # from logits: max(z,0) - z*y + log(1 + e^{-|z|}), summed over outputs, mean over examples
    xp = namespace(z)
    per = xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))
    return xp.sum(per) / batch_size(z)


def softmax_cross_entropy(z, y):
    # from logits: -<y, log_softmax(z)> per example, mean over examples; dE/dz = y_hat - y (seed 004)
    return softmax_cross_entropy_parts(z, y)[0]


def softmax_cross_entropy_parts(z, y):
    """The cost and log_softmax(z), which its derivative rule reuses."""
    xp = namespace(z)
    log_p = log_softmax(z, -1)
    return -xp.sum(y * log_p) / batch_size(z), log_p


def sigmoid_minus(z, y):
    """sigma(z) - y as (1 - y) sigma(z) - y sigma(-z): the same number, but exact to rounding for 0/1 labels,
    where the plain difference cancels (sigma(40) - 1 is -4.2e-18, not 0)."""
    return (1 - y) * sigmoid(z) - y * sigmoid(-z)


def softmax_minus(log_p, y, xp=None):
    """d/dz of -<y, log_softmax(z)>: s softmax(z) - y with s = sum(y) (1 for a distribution), from
    log_p = log_softmax(z), as y expm1(log_p) + (s - y) exp(log_p): exact to rounding for one-hot y, where
    the plain difference cancels."""
    xp = namespace(log_p) if xp is None else xp
    full = y if getattr(y, "shape", ()) == log_p.shape else xp.broadcast_to(y, log_p.shape)
    s = xp.sum(full, axis=-1, keepdims=True)
    return y * xp.expm1(log_p) + (s - y) * xp.exp(log_p)


def _drop(shape, axis):
    axis = axis % len(shape)
    return tuple(n for i, n in enumerate(shape) if i != axis)


# --- naive forms: the lectures' textbook formulas ------------------------------------------

def sigmoid_naive(x):
    xp = namespace(x)
    return 1 / (1 + xp.exp(-x))


def log_sigmoid_naive(x):
    return namespace(x).log(sigmoid_naive(x))


def softplus_naive(x):
    xp = namespace(x)
    return xp.log(1 + xp.exp(x))


def logsumexp_naive(x, axis=-1, keepdims=False):
    xp = namespace(x)
    return xp.log(xp.sum(xp.exp(x), axis=axis, keepdims=keepdims))


def softmax_naive(x, axis=-1):
    xp = namespace(x)
    e = xp.exp(x)
    return e / xp.sum(e, axis=axis, keepdims=True)


def log_softmax_naive(x, axis=-1):
    return namespace(x).log(softmax_naive(x, axis))


def tanh_naive(x):
    xp = namespace(x)
    a, b = xp.exp(x), xp.exp(-x)
    return (a - b) / (a + b)


def binary_cross_entropy_naive(z, y):
    # through probabilities, as J(Theta) of seed 000 is written: log(h) and log(1 - h)
    xp = namespace(z)
    h = sigmoid_naive(z)
    return -xp.sum(y * xp.log(h) + (1 - y) * xp.log(1 - h)) / batch_size(z)


def softmax_cross_entropy_naive(z, y):
    xp = namespace(z)
    return -xp.sum(y * xp.log(softmax_naive(z, -1))) / batch_size(z)
