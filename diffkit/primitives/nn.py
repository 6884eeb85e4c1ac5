"""The seeds' activations and costs as fused primitives: a stable forward and an exact rule each.

The stable forwards are written once against ``xp`` in :mod:`diffkit.formulas`
and run on numpy, mpmath and the complex step alike; SymPy gets the textbook
form (equal as a function, and what SymPy differentiates and prints
compactly).  The rules are exact to rounding at saturation:
``sigma' = e/(1+e)^2`` with ``e = exp(-|x|)``, ``softplus' = -expm1(-softplus)``,
cross-entropies from logits give ``y_hat - y`` written as
``(1 - y) sigma(z) - y sigma(-z)`` and ``y expm1(l) + (1 - y) exp(l)``.

Conventions: ``relu'(0) = 1`` and ``leaky_relu'(0) = 1`` (seeds 003 and 004
write f'(x) = 1 for x >= 0); costs take a batch of rows and return the mean
over the rows; an all ``-inf`` slice has ``logsumexp = -inf`` and gradient 0.
"""
from __future__ import annotations

import numpy as np

from .. import formulas as F
from .lazy import sympy_backend as S
from .linalg import _matmul_x, _matmul_y
from .reductions import expand
from .table import Domain, NotAnalytic, defprim

KINK = NotAnalytic("relu-type activations have a kink at 0; the complex step needs an analytic function: use "
                   "method='central' or 'reverse', or a smooth activation such as softplus or tanh")
LOGITS = Domain(-40.0, 40.0, shapes=(((4,),), ((2, 3),)))
COST = Domain(-40.0, 40.0, shapes=(((3, 4), (3, 4)),))


def _complex_sigmoid(x):
    x = np.asarray(x)
    pos = x.real >= 0
    e = np.exp(np.where(pos, -x, x))  # real part <= 0: never overflows
    return np.where(pos, 1 / (1 + e), e / (1 + e))


def _complex_softplus(x):
    x = np.asarray(x)
    pos = x.real >= 0
    e = np.exp(np.where(pos, -x, x))
    return np.where(pos, x + np.log1p(e), np.log1p(e))


def _complex_bce(z, y):
    return np.sum(_complex_softplus(z) - z * y) / F.batch_size(z)


def _sigmoid_grad(x, xp):
    e = xp.exp(-xp.abs(x))
    return e / ((1 + e) * (1 + e))


def _softmax_from_lse(x, lse, xp):
    """exp(x - logsumexp(x)), with 0 where the whole slice is -inf (no nan from -inf - -inf)."""
    finite = xp.isfinite(lse)
    return xp.where(finite, xp.exp(x - xp.where(finite, lse, 0.0)), 0.0)


def _lse_vjp(g, ans, x, xp, axis, keepdims):
    lse = ans if keepdims else xp.expand_dims(ans, axis=axis)
    return expand(g, xp, x.shape, axis, keepdims) * _softmax_from_lse(x, lse, xp)


def _lse_jvp(xp, ans, inputs, tangents, axis=-1, keepdims=False):
    x, = inputs
    lse = ans if keepdims else xp.expand_dims(ans, axis=axis)
    return xp.sum(tangents[0] * _softmax_from_lse(x, lse, xp), axis=axis, keepdims=keepdims)


def _softmax_jvp(xp, ans, inputs, tangents, axis=-1):
    t = tangents[0]
    return ans * (t - xp.sum(t * ans, axis=axis, keepdims=True))


def _log_softmax_jvp(xp, ans, inputs, tangents, axis=-1):
    t = tangents[0]
    return t - xp.sum(xp.exp(ans) * t, axis=axis, keepdims=True)


def _bce_jvp(xp, ans, inputs, tangents):
    z, y = inputs
    tz, ty = tangents
    m = F.batch_size(z)
    out = 0.0
    if tz is not None:
        out = out + xp.sum(F.sigmoid_minus(z, y) * tz) / m
    if ty is not None:
        out = out - xp.sum(z * ty) / m
    return out


def _sce_jvp(xp, ans, inputs, tangents):
    z, y = inputs
    tz, ty = tangents
    m = F.rows(z.shape)
    log_p = F.log_softmax(z, -1)
    out = 0.0
    if tz is not None:
        out = out + xp.sum(F.softmax_minus(log_p, y, xp) * tz) / m
    if ty is not None:
        out = out - xp.sum(log_p * ty) / m
    return out


def _affine_jvp(xp, ans, inputs, tangents):
    x, w, b = inputs
    tx, tw, tb = tangents
    out = 0.0
    for part in (None if tx is None else tx @ w, None if tw is None else x @ tw, tb):
        if part is not None:
            out = out + part
    return out


def _sum_to(g, b_shape, xp):
    """A bias's gradient: ``g`` summed over its rows (other broadcasts are left to the tape)."""
    shape = getattr(g, "shape", ())
    if len(shape) == 2 and len(b_shape) == 1 and shape[1:] == b_shape:
        return xp.ones(shape[0]) @ g  # a BLAS product: half the time of g.sum(0) at 64 x 4, the same additions
    return g


LSE = {"axis": -1, "keepdims": False}

# fmt: off
defprim("affine", "x w b", kind="array", numpy=F.affine, complex=F.affine, mpmath=F.affine, sympy=F.affine,
        vjp=(lambda g, w, x_shape, xp: _matmul_x(g, w, x_shape, xp), lambda g, x, w_shape, xp: _matmul_y(g, x, w_shape, xp),
             lambda g, b_shape, xp: _sum_to(g, b_shape, xp)), jvp=_affine_jvp,
        doc="a dense layer on rows, x @ w + b, in one node", domain=Domain(shapes=(((2, 3), (3, 4), (4,)),)))
defprim("sum_of_squares", "x", kind="array", numpy=F.sum_of_squares, complex=F.sum_of_squares,
        mpmath=lambda x: np.sum(x * x), sympy=lambda x: np.sum(x * x), vjp=lambda g, x: (2 * g) * x,
        jvp=lambda xp, ans, inputs, tangents: 2 * xp.sum(inputs[0] * tangents[0]), doc="the L2 term of J(Theta)")
defprim("sigmoid", "x", numpy=F.sigmoid, complex=_complex_sigmoid, mpmath=F.sigmoid, sympy=lambda x: S.sigmoid(x),
        kind="array", vjp=lambda g, x, xp: g * _sigmoid_grad(x, xp), jvp="elementwise", domain=LOGITS)
defprim("log_sigmoid", "x", numpy=F.log_sigmoid, complex=lambda x: -_complex_softplus(-np.asarray(x)),
        mpmath=F.log_sigmoid, sympy=lambda x: S.log_sigmoid(x), kind="array",
        vjp=lambda g, ans, xp: -g * xp.expm1(ans), jvp="elementwise", domain=LOGITS)
defprim("softplus", "x", numpy=F.softplus, complex=_complex_softplus, mpmath=F.softplus,
        sympy=lambda x: S.softplus(x), kind="array", vjp=lambda g, ans, xp: -g * xp.expm1(-ans), jvp="elementwise",
        domain=LOGITS)
defprim("relu", "x", numpy=F.relu, complex=KINK, mpmath=F.relu, sympy=lambda x: S.leaky(x, 0), kind="array",
        vjp=lambda g, x, xp: g * xp.to_float(x >= 0), jvp="elementwise", convention="relu'(0) = 1",
        domain=Domain(kinks=(0.0,)))
defprim("leaky_relu", "x", params={"alpha": 0.01}, numpy=F.leaky_relu, complex=KINK, mpmath=F.leaky_relu,
        sympy=lambda x, alpha=0.01: S.leaky(x, alpha), kind="array",
        vjp=lambda g, x, alpha, xp: xp.where(x >= 0, g, alpha * g), jvp="elementwise",
        convention="leaky_relu'(0) = 1", domain=Domain(kinks=(0.0,), params=({}, {"alpha": 0.2})))
defprim("logsumexp", "x", kind="array", params=LSE, numpy=F.logsumexp, complex=F.logsumexp, mpmath=F.logsumexp,
        sympy=lambda x, axis=-1, keepdims=False: S.logsumexp(x, axis, keepdims), vjp=_lse_vjp, jvp=_lse_jvp,
        convention="an all -inf slice gives -inf with gradient 0", domain=LOGITS)
defprim("softmax", "x", kind="array", params={"axis": -1}, numpy=F.softmax, complex=F.softmax, mpmath=F.softmax,
        sympy=lambda x, axis=-1: S.softmax(x, axis),
        vjp=lambda g, ans, axis, xp: ans * (g - xp.sum(g * ans, axis=axis, keepdims=True)), jvp=_softmax_jvp,
        domain=LOGITS)
defprim("log_softmax", "x", kind="array", params={"axis": -1}, numpy=F.log_softmax, complex=F.log_softmax,
        mpmath=F.log_softmax, sympy=lambda x, axis=-1: x - S.logsumexp(x, axis, True),
        vjp=lambda g, ans, axis, xp: g - xp.exp(ans) * xp.sum(g, axis=axis, keepdims=True), jvp=_log_softmax_jvp,
        domain=LOGITS)
defprim("binary_cross_entropy", "z y", kind="array", numpy=F.binary_cross_entropy, complex=_complex_bce,
        mpmath=F.binary_cross_entropy, sympy=lambda z, y: S.binary_cross_entropy(z, y),
        vjp=(lambda g, z, y: F.sigmoid_minus(z, y) * (g / F.batch_size(z)), lambda g, z: -z * (g / F.batch_size(z))),
        jvp=_bce_jvp, doc="mean over rows of the K-output cross-entropy from logits (seed 000)", domain=COST)
defprim("softmax_cross_entropy", "z y", kind="array", residual=True, numpy=F.softmax_cross_entropy_parts,
        value=F.softmax_cross_entropy,
        complex=F.softmax_cross_entropy_parts, mpmath=F.softmax_cross_entropy_parts,
        sympy=lambda z, y: (S.softmax_cross_entropy(z, y), None),
        vjp=(lambda g, res, y, z_shape, xp: F.softmax_minus(res, y, xp) * (g / F.rows(z_shape)),
             lambda g, res, z_shape: -res * (g / F.rows(z_shape))),
        jvp=_sce_jvp, doc="mean over rows of -sum y log softmax(z), from logits (seed 004)", domain=COST)
# fmt: on
