"""Every derivative rule against an oracle that never runs a diffkit rule: mpmath differentiates the mathematics.

For each primitive the catalogue below writes the function *from its definition* in mpmath (sigma(x) =
1 / (1 + e^-x), hypot = sqrt(a^2 + b^2), softmax = e^x / sum e^x ...), on numpy object arrays of mpf numbers.
The oracle is ``mpmath.diff`` of ``F(theta) = sum(w * op(inputs(theta)))`` along each component, at 40 digits:
numerical differentiation of mpmath's own functions, with no diffkit code in its path.  Four checks per
primitive, on the same F written against ``dk.namespace``:

* the tape (``method="reverse"``, float64) agrees with the oracle to float64 rounding;
* the mpmath referee with its certification **off** (``dk.reference(certify=False)``) agrees to 25 digits, so
  a wrong rule is caught even where the certification is switched off or is itself wrong;
* the referee with its certification **on** does not raise (its own high-precision differences agree);
* forward mode (``dk.jvp`` along a fixed direction, the JVP rules) agrees with the oracle's directional
  derivative to float64 rounding.

Ops a namespace does not have yet are skipped with the op's name (the primitive table is growing).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import mpmath
import numpy as np
import pytest

import diffkit as dk

ORACLE_DPS = 40
TINY = np.finfo(float).tiny  # float64's smallest normal number: below it, a derivative underflows to 0 honestly
REVERSE_RTOL = 1e-12  # a rule evaluated in float64: a few ulps, times the conditioning of a small composition
REFEREE_RTOL = 1e-25  # the referee at 30 digits against a 40-digit oracle


@dataclass(frozen=True)
class Case:
    """``dk_fn(xp, *inputs)`` written against the namespace, and ``mp_fn(*inputs)`` from the definition."""

    name: str
    dk_fn: Callable
    mp_fn: Callable
    shapes: tuple = ((4,),)
    lo: float = -1.5
    hi: float = 1.5
    gap: float = 0.0  # inputs keep at least this distance from 0 (kinks) and from each other (ties)
    dps: int = 40  # the oracle's working digits (saturated cases need e^-800 next to 1)


def E(f):
    """An mpmath scalar function, elementwise on object arrays."""
    return np.frompyfunc(f, 1, 1)


def E2(f):
    return np.frompyfunc(f, 2, 1)


mp = mpmath
sigma = lambda x: 1 / (1 + mp.exp(-x))  # noqa: E731
LABELS = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])  # constants: bce labels, and a one-hot target below
ONE_HOT = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
MASK = np.array([True, False, True, False])


def _softmax(x):  # rows of a 2-d object array
    e = E(mp.exp)(x)
    return e / e.sum(axis=-1, keepdims=True)


def _at(x, index, v, how):
    """x with x[index] replaced by (set) or increased by (add, repeats adding) v, on a copy."""
    out = x.copy()
    if how == "set":
        out[index] = v
    else:
        np.add.at(out, index, v)
    return out


def _det3(a):
    return mp.det(mp.matrix(a.tolist()))


def _per_matrix(fn, a):
    """fn of each matrix of a stack (the last two axes), as an object array of the stack's shape."""
    out = [fn(m) for m in a.reshape(-1, *a.shape[-2:])]
    return np.array(out, dtype=object).reshape(*a.shape[:-2], *np.shape(out[0]))


def _inv(a):
    return np.array(mp.inverse(mp.matrix(a.tolist())).tolist(), dtype=object)


def _column_signs(V):
    """The sign of each column's entry of largest magnitude (the first on ties): diffkit's documented convention
    for eigen- and singular vectors, written out."""
    signs = []
    for j in range(V.shape[1]):
        col = list(V[:, j])
        big = max(range(len(col)), key=lambda i: (abs(col[i]), -i))
        signs.append(-1 if col[big] < 0 else 1)
    return np.array(signs, dtype=object)


def _signed_columns(V):
    return V * _column_signs(V)


def _sym_eigh(a):
    """Eigenvalues ascending and signed eigenvectors of the symmetric a + a^T, by mpmath's Jacobi iteration."""
    E, Q = mp.eigsy(mp.matrix((a + a.T).tolist()))
    order = sorted(range(len(E)), key=lambda i: E[i])
    return np.array([E[i] for i in order], dtype=object), _signed_columns(np.array(Q.tolist(), dtype=object)[:, order])


def _svd(a):
    """The reduced SVD by mpmath: singular values descending, U's columns signed, V's rows following them."""
    U, S, V = mp.svd_r(mp.matrix(a.tolist()), full_matrices=False)
    order = sorted(range(len(S)), key=lambda i: -S[i])
    U = np.array(U.tolist(), dtype=object)[:, order]
    signs = _column_signs(U)
    return U * signs, np.array([S[i] for i in order], dtype=object), np.array(V.tolist(), dtype=object)[order] * \
        signs[:, None]


def _gram_schmidt(a):
    """The reduced QR from its definition: Q's columns orthonormalize a's in order, R = Q^T a (diagonal > 0)."""
    cols = []
    for j in range(a.shape[1]):
        v = a[:, j].copy()
        for q in cols:
            v = v - q.dot(a[:, j]) * q
        cols.append(v / mp.sqrt(v.dot(v)))
    Q = np.stack(cols, axis=1)
    return Q, np.triu(Q.T.dot(a))


def _solve(a, b):
    """a^-1 b, one mpmath LU solve per column of b."""
    if b.ndim == 2:
        return np.stack([_solve(a, col) for col in b.T], axis=1)
    return np.array(mp.lu_solve(mp.matrix(a.tolist()), mp.matrix(b.tolist())).tolist(), dtype=object).ravel()


UNARY = [
    Case("exp", lambda xp, x: xp.exp(x), E(mp.exp)),
    Case("log", lambda xp, x: xp.log(x), E(mp.log), lo=0.2, hi=3.0),
    Case("log1p", lambda xp, x: xp.log1p(x), E(lambda a: mp.log(1 + a)), lo=-0.8, hi=2.0),
    Case("expm1", lambda xp, x: xp.expm1(x), E(lambda a: mp.exp(a) - 1)),
    Case("sqrt", lambda xp, x: xp.sqrt(x), E(mp.sqrt), lo=0.2, hi=3.0),
    Case("tanh", lambda xp, x: xp.tanh(x), E(lambda a: (mp.exp(a) - mp.exp(-a)) / (mp.exp(a) + mp.exp(-a)))),
    Case("sin", lambda xp, x: xp.sin(x), E(mp.sin), lo=-3.0, hi=3.0),
    Case("cos", lambda xp, x: xp.cos(x), E(mp.cos), lo=-3.0, hi=3.0),
    Case("tan", lambda xp, x: xp.tan(x), E(lambda a: mp.sin(a) / mp.cos(a)), lo=-1.2, hi=1.2),
    Case("abs", lambda xp, x: xp.abs(x), E(mp.fabs), gap=0.1),
    Case("negative", lambda xp, x: -x, E(lambda a: -a)),
    Case("square", lambda xp, x: xp.square(x), E(lambda a: a * a)),
    Case("log2", lambda xp, x: xp.log2(x), E(lambda a: mp.log(a) / mp.log(2)), lo=0.2, hi=3.0),
    Case("log10", lambda xp, x: xp.log10(x), E(lambda a: mp.log(a) / mp.log(10)), lo=0.2, hi=3.0),
    Case("sinh", lambda xp, x: xp.sinh(x), E(lambda a: (mp.exp(a) - mp.exp(-a)) / 2)),
    Case("cosh", lambda xp, x: xp.cosh(x), E(lambda a: (mp.exp(a) + mp.exp(-a)) / 2)),
    Case("arcsin", lambda xp, x: xp.arcsin(x), E(mp.asin), lo=-0.9, hi=0.9),
    Case("arccos", lambda xp, x: xp.arccos(x), E(mp.acos), lo=-0.9, hi=0.9),
    Case("arctan", lambda xp, x: xp.arctan(x), E(mp.atan)),
    Case("arcsinh", lambda xp, x: xp.arcsinh(x), E(lambda a: mp.log(a + mp.sqrt(a * a + 1)))),
    Case("arccosh", lambda xp, x: xp.arccosh(x), E(lambda a: mp.log(a + mp.sqrt(a * a - 1))), lo=1.2, hi=3.0),
    Case("arctanh", lambda xp, x: xp.arctanh(x), E(lambda a: mp.log((1 + a) / (1 - a)) / 2), lo=-0.9, hi=0.9),
    Case("erf", lambda xp, x: xp.erf(x), E(mp.erf)),
    Case("erfc", lambda xp, x: xp.erfc(x), E(mp.erfc)),
    Case("lgamma", lambda xp, x: xp.lgamma(x), E(mp.loggamma), lo=0.3, hi=4.0),
    Case("digamma", lambda xp, x: xp.digamma(x), E(mp.digamma), lo=0.3, hi=4.0),
    Case("exp2", lambda xp, x: xp.exp2(x), E(lambda a: mp.exp(a * mp.log(2)))),
    Case("cbrt", lambda xp, x: xp.cbrt(x), E(lambda a: mp.exp(mp.log(a) / 3)), lo=0.2, hi=3.0),
    Case("reciprocal", lambda xp, x: xp.reciprocal(x), E(lambda a: 1 / a), lo=0.3, hi=3.0),
    Case("positive", lambda xp, x: xp.positive(x), E(lambda a: a)),
    Case("polygamma", lambda xp, x: xp.polygamma(1, x), E(lambda a: mp.polygamma(1, a)), lo=0.3, hi=4.0),
    Case("clip", lambda xp, x: xp.clip(x, -1.0, 1.0), E(lambda a: min(max(a, -1), 1)), lo=-2.0, hi=2.0, gap=0.1),
    Case("clip_keywords", lambda xp, x: xp.clip(x, min=-1.0, max=1.0), E(lambda a: min(max(a, -1), 1)), lo=-2.0,
         hi=2.0, gap=0.1),
    Case("sigmoid", lambda xp, x: dk.nn.sigmoid(x), E(sigma), lo=-6.0, hi=6.0),
    # saturation: e/(1+e)^2 is unchanged by e -> 1/e, so only |x| past exp's overflow tells exp(-|x|) from exp(|x|)
    Case("sigmoid_saturated", lambda xp, x: dk.nn.sigmoid(x), E(sigma), ((2,),), lo=-800.0, hi=800.0, gap=720.0,
         dps=400),
    Case("tanh_saturated", lambda xp, x: xp.tanh(x), E(mp.tanh), ((2,),), lo=-400.0, hi=400.0, gap=360.0, dps=400),
    # two more saturated points each (another seed): a rule that only overflows past exp's range is seen twice
    Case("sigmoid_saturated_again", lambda xp, x: dk.nn.sigmoid(x), E(sigma), ((2,),), lo=-745.0, hi=745.0, gap=712.0,
         dps=400),
    Case("tanh_saturated_again", lambda xp, x: xp.tanh(x), E(mp.tanh), ((2,),), lo=-390.0, hi=390.0, gap=356.0,
         dps=400),
    Case("log_sigmoid", lambda xp, x: dk.nn.log_sigmoid(x), E(lambda a: -mp.log(1 + mp.exp(-a))), lo=-6.0, hi=6.0),
    Case("softplus", lambda xp, x: dk.nn.softplus(x), E(lambda a: mp.log(1 + mp.exp(a))), lo=-6.0, hi=6.0),
    Case("relu", lambda xp, x: dk.nn.relu(x), E(lambda a: a if a > 0 else 0 * a), gap=0.1),
    # alpha is the float 0.01 (its exact binary value), as f computes it
    Case("leaky_relu", lambda xp, x: dk.nn.leaky_relu(x), E(lambda a: a if a > 0 else mp.mpf(0.01) * a), gap=0.1),
]

BINARY = [
    Case("add", lambda xp, x, y: x + y, lambda x, y: x + y, ((4,), (4,))),
    Case("subtract", lambda xp, x, y: x - y, lambda x, y: x - y, ((4,), (4,))),
    Case("multiply", lambda xp, x, y: x * y, lambda x, y: x * y, ((4,), (4,))),
    Case("divide", lambda xp, x, y: x / y, lambda x, y: x / y, ((4,), (4,)), lo=0.3, hi=2.0),
    Case("power", lambda xp, x, y: x ** y, E2(lambda a, b: mp.exp(b * mp.log(a))), ((4,), (4,)), lo=0.3, hi=2.0),
    Case("broadcast", lambda xp, x, y: x * y, lambda x, y: x * y, ((2, 3), (3,))),
    Case("maximum", lambda xp, x, y: xp.maximum(x, y), E2(lambda a, b: a if a > b else b), ((4,), (4,)), gap=0.1),
    Case("minimum", lambda xp, x, y: xp.minimum(x, y), E2(lambda a, b: b if a > b else a), ((4,), (4,)), gap=0.1),
    Case("hypot", lambda xp, x, y: xp.hypot(x, y), E2(lambda a, b: mp.sqrt(a * a + b * b)), ((4,), (4,)), gap=0.1),
    # x moved by the float64 step from float(x) toward float(y): a constant shift wherever it is differentiable
    Case("nextafter", lambda xp, x, y: xp.nextafter(x, y) * y,
         E2(lambda a, b: (a + (mp.mpf(float(np.nextafter(float(a), float(b)))) - mp.mpf(float(a)))) * b),
         ((4,), (4,)), gap=0.1),
    Case("logaddexp", lambda xp, x, y: xp.logaddexp(x, y), E2(lambda a, b: mp.log(mp.exp(a) + mp.exp(b))),
         ((4,), (4,))),
    Case("arctan2", lambda xp, x, y: xp.arctan2(x, y), E2(mp.atan2), ((4,), (4,)), gap=0.1),
    Case("remainder", lambda xp, x, y: xp.remainder(x, y), E2(lambda a, b: a - b * mp.floor(a / b)), ((4,), (4,)),
         lo=0.3, hi=2.0),
    Case("xlogy", lambda xp, x, y: xp.xlogy(x, y), E2(lambda a, b: a * mp.log(b)), ((4,), (4,)), lo=0.3, hi=2.0),
    Case("where", lambda xp, x, y: xp.where(MASK, x, y), lambda x, y: np.where(MASK, x, y), ((4,), (4,))),
]

REDUCTIONS = [
    Case("sum", lambda xp, x: xp.sum(x, axis=0), lambda x: x.sum(axis=0), ((2, 3),)),
    Case("mean", lambda xp, x: xp.mean(x, axis=1), lambda x: x.sum(axis=1) / 3, ((2, 3),)),
    Case("max", lambda xp, x: xp.max(x, axis=1), lambda x: np.array([max(r) for r in x], dtype=object), ((2, 3),),
         gap=0.1),
    Case("min", lambda xp, x: xp.min(x, axis=1), lambda x: np.array([min(r) for r in x], dtype=object), ((2, 3),),
         gap=0.1),
    Case("prod", lambda xp, x: xp.prod(x, axis=1), lambda x: np.array([mp.fprod(r) for r in x], dtype=object),
         ((2, 3),)),
    Case("var", lambda xp, x: xp.var(x), lambda x: ((x - x.mean()) ** 2).mean(), ((5,),)),
    Case("std", lambda xp, x: xp.std(x), lambda x: mp.sqrt(((x - x.mean()) ** 2).mean()), ((5,),)),
    Case("var_correction", lambda xp, x: xp.var(x, correction=1), lambda x: ((x - x.mean()) ** 2).sum() / 4, ((5,),)),
    Case("std_correction", lambda xp, x: xp.std(x, correction=1), lambda x: mp.sqrt(((x - x.mean()) ** 2).sum() / 4),
         ((5,),)),
    # a middle axis of a 3-d array (on 2-d arrays axis 1 and axis -1 are the same)
    Case("prod_all", lambda xp, x: xp.prod(x), lambda x: mp.fprod(x.ravel()), ((2, 3),)),
    Case("prod_middle_axis", lambda xp, x: xp.prod(x, axis=1), lambda x: np.prod(x, axis=1), ((2, 3, 2),)),
    Case("cumprod_middle_axis", lambda xp, x: xp.cumprod(x, axis=1), lambda x: np.cumprod(x, axis=1), ((2, 3, 2),)),
    Case("cumsum_middle_axis", lambda xp, x: xp.cumsum(x, axis=1), lambda x: np.cumsum(x, axis=1), ((2, 3, 2),)),
    Case("cumsum", lambda xp, x: xp.cumsum(x), lambda x: np.cumsum(x), ((5,),)),
    Case("cumprod", lambda xp, x: xp.cumprod(x), lambda x: np.cumprod(x), ((5,),)),
    Case("logsumexp", lambda xp, x: dk.nn.logsumexp(x, axis=-1),
         lambda x: np.array([mp.log(sum(mp.exp(a) for a in r)) for r in x], dtype=object), ((2, 3),)),
    Case("softmax", lambda xp, x: dk.nn.softmax(x, axis=-1), _softmax, ((2, 3),)),
    Case("log_softmax", lambda xp, x: dk.nn.log_softmax(x, axis=-1), lambda x: E(mp.log)(_softmax(x)), ((2, 3),)),
]

STRUCTURE = [
    Case("reshape", lambda xp, x: xp.reshape(x, (3, 2)), lambda x: x.reshape(3, 2), ((2, 3),)),
    Case("transpose", lambda xp, x: xp.transpose(x), lambda x: x.T, ((2, 3),)),
    Case("getitem", lambda xp, x: x[1:4] * x[0], lambda x: x[1:4] * x[0], ((5,),)),
    Case("concatenate", lambda xp, x, y: xp.concatenate([x * y, y], axis=0),
         lambda x, y: np.concatenate([x * y, y]), ((3,), (3,))),
    Case("stack", lambda xp, x, y: xp.stack([x, x * y], axis=1), lambda x, y: np.stack([x, x * y], axis=1),
         ((3,), (3,))),
    Case("tile", lambda xp, x: xp.tile(x, (2, 1)) * xp.tile(x, (2, 1)), lambda x: np.tile(x, (2, 1)) ** 2, ((2, 3),)),
    Case("repeat", lambda xp, x: xp.repeat(x, 2, axis=0) ** 2, lambda x: np.repeat(x, 2, axis=0) ** 2, ((2, 3),)),
    Case("flip", lambda xp, x: xp.flip(x, axis=1) * x, lambda x: np.flip(x, axis=1) * x, ((2, 3),)),
    Case("roll", lambda xp, x: xp.roll(x, 1, axis=1) * x, lambda x: np.roll(x, 1, axis=1) * x, ((2, 3),)),
    # a shift per axis (a shift of 2 on 3 entries is not its own inverse)
    Case("roll_per_axis", lambda xp, x: xp.roll(x, (1, 2), axis=(0, 1)), lambda x: np.roll(x, (1, 2), axis=(0, 1)),
         ((2, 3),)),
    Case("matrix_transpose", lambda xp, x: xp.matrix_transpose(x), lambda x: np.swapaxes(x, -1, -2), ((2, 2, 3),)),
    Case("swapaxes", lambda xp, x: xp.swapaxes(x, 0, 2), lambda x: np.swapaxes(x, 0, 2), ((2, 3, 4),)),
    Case("moveaxis", lambda xp, x: xp.moveaxis(x, 0, -1), lambda x: np.moveaxis(x, 0, -1), ((2, 3, 4),)),
    Case("squeeze", lambda xp, x: xp.squeeze(x, axis=0), lambda x: x[0], ((1, 3),)),
    Case("expand_dims", lambda xp, x: xp.expand_dims(x, axis=-1), lambda x: x[:, None], ((3,),)),
    Case("broadcast_to", lambda xp, x: xp.broadcast_to(x, (2, 3)), lambda x: np.stack([x, x]), ((3,),)),
    # tiles with more and with fewer reps than axes, and several copies along every axis
    Case("tile_more_reps", lambda xp, x: xp.tile(x, (2, 2)), lambda x: np.tile(x, (2, 2)), ((3,),)),
    Case("tile_fewer_reps", lambda xp, x: xp.tile(x, (2,)), lambda x: np.tile(x, (1, 2)), ((2, 3),)),
    Case("tile_every_axis", lambda xp, x: xp.tile(x, (2, 3)), lambda x: np.tile(x, (2, 3)), ((2, 3),)),
    Case("stack_first_axis", lambda xp, x, y: xp.stack([x, y * y], axis=0), lambda x, y: np.stack([x, y * y]),
         ((2, 3), (2, 3))),
    Case("stack_last_axis", lambda xp, x, y: xp.stack([x, y * y], axis=-1), lambda x, y: np.stack([x, y * y], -1),
         ((2, 3), (2, 3))),
    Case("take", lambda xp, x: xp.take(x, [0, 2, 2]) * x[1], lambda x: x[[0, 2, 2]] * x[1], ((5,),)),
    Case("take_axis", lambda xp, x: xp.take(x, [2, 0], axis=1), lambda x: x[:, [2, 0]], ((3, 4),)),
    Case("at_set", lambda xp, x, v: xp.at(x)[1].set(v * v), lambda x, v: _at(x, 1, v * v, "set"), ((5,), ())),
    Case("at_set_row", lambda xp, x, v: xp.at(x)[1].set(v), lambda x, v: _at(x, 1, v, "set"), ((3, 4), (4,))),
    Case("at_add", lambda xp, x, v: xp.at(x)[[0, 2, 2]].add(v) * x, lambda x, v: _at(x, [0, 2, 2], v, "add") * x,
         ((5,), (3,))),
]

def _linalg(xp):
    """The namespace's own linear algebra; numpy's module (which a tape or mpmath array cannot enter) is absent."""
    linalg = getattr(xp, "linalg", None)
    if linalg is None or linalg is np.linalg:
        raise NotImplementedError(f"{xp!r} has no linalg of its own")
    return linalg


LINEAR_ALGEBRA = [
    Case("matmul", lambda xp, a, b: xp.matmul(a, b), lambda a, b: a.dot(b), ((2, 3), (3, 2))),
    Case("matmul_matvec", lambda xp, a, b: a @ b, lambda a, b: a.dot(b), ((2, 3), (3,))),
    Case("affine", lambda xp, x, w, b: dk.nn.affine(x, w, b), lambda x, w, b: x.dot(w) + b, ((2, 3), (3, 2), (2,))),
    Case("sum_of_squares", lambda xp, x: dk.nn.sum_of_squares(x), lambda x: (x * x).sum(), ((2, 3),)),
    Case("det", lambda xp, a: _linalg(xp).det(a), _det3, ((3, 3),)),
    Case("inv", lambda xp, a: _linalg(xp).inv(a), _inv, ((3, 3),)),
    Case("solve", lambda xp, a, b: _linalg(xp).solve(a, b), _solve, ((3, 3), (3,))),
    Case("slogdet_logabsdet", lambda xp, a: _linalg(xp).slogdet(a)[1], lambda a: mp.log(abs(_det3(a))), ((3, 3),)),
    Case("cholesky", lambda xp, a: _linalg(xp).cholesky(a @ xp.transpose(a) + 3.0 * np.eye(3)),
         lambda a: np.array(mp.cholesky(mp.matrix((a.dot(a.T) + 3 * np.eye(3, dtype=int)).tolist())).tolist(),
                            dtype=object), ((3, 3),)),
    Case("einsum", lambda xp, a, b: xp.einsum("ij,jk->ik", a, b), lambda a, b: a.dot(b), ((2, 3), (3, 2))),
    Case("diagonal", lambda xp, a: xp.diagonal(a) * xp.diagonal(a, offset=1)[0], lambda a: np.diagonal(a)
         * np.diagonal(a, offset=1)[0], ((3, 3),)),
    Case("tril", lambda xp, a: xp.tril(a) * a, lambda a: np.tril(a) * a, ((3, 3),)),
    Case("triu", lambda xp, a: xp.triu(a, k=1) * a, lambda a: np.triu(a, k=1) * a, ((3, 3),)),
    Case("trace", lambda xp, a: xp.trace(a) * a, lambda a: np.trace(a) * a, ((3, 3),)),
    Case("matmul_vectors", lambda xp, a, b: xp.matmul(a, b), lambda a, b: a.dot(b), ((3,), (3,))),
    Case("matmul_vecmat", lambda xp, a, b: xp.matmul(a, b), lambda a, b: a.dot(b), ((3,), (3, 2))),
    Case("batched_matmul", lambda xp, a, b: xp.matmul(a, b), lambda a, b: np.stack([a[0].dot(b[0]), a[1].dot(b[1])]),
         ((2, 2, 3), (2, 3, 2))),
    Case("vector_norm", lambda xp, a: _linalg(xp).norm(a), lambda a: mp.sqrt((a * a).sum()), ((4,),)),
    Case("vector_norm_axis", lambda xp, a: _linalg(xp).vector_norm(a, axis=-1, keepdims=True) * a,
         lambda a: E(mp.sqrt)((a * a).sum(axis=-1, keepdims=True)) * a, ((2, 3),)),
    # the other shapes of matmul: stacks of matrices against a vector, and a vector against a stack
    Case("matmul_stack_vec", lambda xp, a, b: a @ b, lambda a, b: np.stack([r.dot(b) for r in a]), ((2, 2, 3), (3,))),
    Case("matmul_vec_stack", lambda xp, a, b: a @ b, lambda a, b: np.stack([a.dot(m) for m in b]), ((3,), (2, 3, 2))),
    # two batch axes, the second not of the matrices' size (1 x 3 matrices of 2 x 2)
    Case("det_batches", lambda xp, a: _linalg(xp).det(a), lambda a: _per_matrix(_det3, a), ((1, 3, 2, 2),)),
    Case("logabsdet_batches", lambda xp, a: _linalg(xp).slogdet(a)[1],
         lambda a: _per_matrix(lambda m: mp.log(abs(_det3(m))), a), ((1, 3, 2, 2),)),
    Case("diagonal_stack", lambda xp, a: xp.diagonal(a, offset=1), lambda a: np.diagonal(a, offset=1, axis1=-2,
                                                                                          axis2=-1), ((2, 3, 4),)),
    Case("einsum_implicit", lambda xp, a, b: xp.einsum("ij,jk", a, b), lambda a, b: a.dot(b), ((2, 3), (3, 2))),
    # an index (k) summed within its operand only: that operand's gradient is broadcast along it
    Case("einsum_summed_alone", lambda xp, a, b: xp.einsum("ij,k->i", a, b), lambda a, b: a.sum(axis=1) * b.sum(),
         ((2, 3), (4,))),
    Case("solve_matrix_rhs", lambda xp, a, b: _linalg(xp).solve(a, b), _solve, ((3, 3), (3, 2))),
    # a stack of matrices and one vector (numpy 2's rule: a 1-d right-hand side is a vector for every matrix)
    Case("solve_stack_vector", lambda xp, a, b: _linalg(xp).solve(a, b), lambda a, b: np.stack([_solve(m, b) for m in a]),
         ((2, 3, 3), (3,))),
    Case("solve_triangular_stack_vector", lambda xp, a, b: _linalg(xp).solve_triangular(a, b, lower=True),
         lambda a, b: np.stack([_solve(np.tril(m), b) for m in a]), ((2, 3, 3), (3,))),
    *[Case(f"solve_triangular_{side}_{rhs}", lambda xp, a, b, low=low: _linalg(xp).solve_triangular(a, b, lower=low),
           lambda a, b, tri=tri: _solve(tri(a), b), ((3, 3), shape))
      for side, low, tri in (("lower", True, np.tril), ("upper", False, np.triu))
      for rhs, shape in (("vector", (3,)), ("matrix", (3, 2)))],
    Case("cholesky_batches", lambda xp, a: _linalg(xp).cholesky(a @ xp.matrix_transpose(a) + 3.0 * np.eye(2)),
         lambda a: _per_matrix(lambda m: np.array(mp.cholesky(mp.matrix((m.dot(m.T) + 3 * np.eye(2, dtype=int))
                                                                        .tolist())).tolist(), dtype=object), a),
         ((1, 3, 2, 2),)),
    Case("outer", lambda xp, a, b: xp.outer(a, b), lambda a, b: np.outer(a, b), ((3,), (2,))),
    # the decompositions, on matrices made symmetric (eigh) inside the function, so any entry may be perturbed
    Case("eigvalsh", lambda xp, a: _linalg(xp).eigvalsh(a + xp.matrix_transpose(a)), lambda a: _sym_eigh(a)[0],
         ((3, 3),)),
    Case("eigvecsh", lambda xp, a: _linalg(xp).eigh(a + xp.matrix_transpose(a)).eigenvectors,
         lambda a: _sym_eigh(a)[1], ((3, 3),)),
    Case("svdvals", lambda xp, a: _linalg(xp).svdvals(a), lambda a: _svd(a)[1], ((3, 2),)),
    *[Case(f"svd_{part}_{m}x{n}", lambda xp, a, k=k: _linalg(xp).svd(a, full_matrices=False)[k],
           lambda a, k=k: _svd(a)[k], ((m, n),))
      for part, k in (("u", 0), ("vh", 2)) for m, n in ((3, 2), (2, 3), (3, 3))],
    Case("qr_q", lambda xp, a: _linalg(xp).qr(a).Q, lambda a: _gram_schmidt(a)[0], ((3, 2),)),
    Case("qr_r", lambda xp, a: _linalg(xp).qr(a).R, lambda a: _gram_schmidt(a)[1], ((3, 3),)),
    # stacks (two batch axes: the rules' axes must count from the end)
    Case("eigvecsh_batches", lambda xp, a: _linalg(xp).eigh(a + xp.matrix_transpose(a)).eigenvectors,
         lambda a: _per_matrix(lambda m: _sym_eigh(m)[1], a), ((1, 2, 3, 3),)),
    *[Case(f"svd_{part}_batches", lambda xp, a, k=k: _linalg(xp).svd(a, full_matrices=False)[k],
           lambda a, k=k: _per_matrix(lambda m: _svd(m)[k], a), ((1, 2, 2, 3),)) for part, k in (("u", 0), ("vh", 2))],
    *[Case(f"qr_{part}_batches", lambda xp, a, k=k: _linalg(xp).qr(a)[k],
           lambda a, k=k: _per_matrix(lambda m: _gram_schmidt(m)[k], a), ((1, 2, 3, 2),)) for part, k in (("q", 0),
                                                                                                     ("r", 1))],
]

COSTS = [
    Case("binary_cross_entropy", lambda xp, z: dk.nn.binary_cross_entropy(z, LABELS),
         lambda z: sum(-y * mp.log(sigma(a)) - (1 - y) * mp.log(1 - sigma(a))
                       for a, y in zip(z.ravel(), LABELS.ravel())) / 2, ((2, 3),)),
    Case("softmax_cross_entropy", lambda xp, z: dk.nn.softmax_cross_entropy(z, ONE_HOT),
         lambda z: -(ONE_HOT * E(mp.log)(_softmax(z))).sum() / 2, ((2, 3),)),
    # the labels as inputs too (soft labels): BCE = log(1 + e^z) - z y per output, CE = -sum y log softmax(z)
    Case("binary_cross_entropy_labels", lambda xp, z, y: dk.nn.binary_cross_entropy(z, y),
         lambda z, y: sum(mp.log(1 + mp.exp(a)) - a * b for a, b in zip(z.ravel(), y.ravel())) / 2,
         ((2, 3), (2, 3)), lo=-2.0, hi=2.0),
    Case("softmax_cross_entropy_labels", lambda xp, z, y: dk.nn.softmax_cross_entropy(z, y),
         lambda z, y: -(y * E(mp.log)(_softmax(z))).sum() / 2, ((2, 3), (2, 3))),
]

CATALOGUE = UNARY + BINARY + REDUCTIONS + STRUCTURE + LINEAR_ALGEBRA + COSTS

# Known bugs these tests found (reported; strict: a fix makes the test pass and the marker must go)
FLOAT_CONSTANT = ("the rule multiplies by a float64 constant ({}, from math): the mpmath referee's derivative is "
                  "then float64-accurate (~17 digits), not 30")
CLIP_POSITIONAL = ("xp.clip(x, -1.0, 1.0) with positional bounds (numpy's and the array API's signature): the tape "
                   "ignores them in the gradient (1 outside the bounds) and the mpmath namespace raises TypeError")
ROLL = ("roll(x, 1, axis=1)'s rule is wrong on a 2-d array: the tape and the referee agree with each other, not "
        "with the derivative (the referee's own certification fails: 0 digits)")
REPEAT = "repeat(x, 2, axis=0)'s rule raises 'array is not broadcastable to correct shape'"
KNOWN: dict = {}  # (test, primitive) -> the reason it is expected to fail; every rule passes now


def cases(test: str) -> list:
    return [pytest.param(c, id=c.name, marks=pytest.mark.xfail(strict=True, reason=KNOWN[test, c.name])
                         if (test, c.name) in KNOWN else ()) for c in CATALOGUE]


def _inputs(case: Case) -> np.ndarray:
    """theta: the inputs flattened, uniform in [lo, hi], each kept ``gap`` from 0 and from the others."""
    rng = np.random.default_rng(sum(map(ord, case.name)))
    size = sum(int(np.prod(s)) for s in case.shapes)
    while True:
        theta = rng.uniform(case.lo, case.hi, size)
        if case.name.startswith(("det", "inv", "solve", "slogdet", "logabsdet")):  # well conditioned
            n = int(np.prod(case.shapes[0]))
            theta[:n] += 2.0 * np.broadcast_to(np.eye(case.shapes[0][-1]), case.shapes[0]).ravel()
        if case.name == "softmax_cross_entropy_labels":  # the fused rule's premise: each label row sums to 1,
            theta[6:] = [0.25, 0.5, 0.25, 0.125, 0.375, 0.5]  # exactly in binary
        far = np.abs(theta).min() >= case.gap
        apart = size < 2 or np.diff(np.sort(theta)).min() >= case.gap
        if not case.gap or (far and apart):
            return theta


def _split(theta, shapes):
    out, start = [], 0
    for s in shapes:
        n = int(np.prod(s))
        out.append(theta[start:start + n].reshape(s))
        start += n
    return out


def _weights(case: Case, theta: np.ndarray) -> np.ndarray:
    """Fixed weights w of the outputs (so that every output's derivative counts), shape of the op's output."""
    with mpmath.workdps(ORACLE_DPS):
        shape = np.shape(case.mp_fn(*_split(np.array([mpmath.mpf(float(v)) for v in theta], dtype=object),
                                            case.shapes)))
    return np.random.default_rng(7).uniform(0.5, 1.5, shape)


def _dk_objective(case: Case, w: np.ndarray) -> Callable:
    def F(t):
        xp = dk.namespace(t)
        return xp.sum(w * case.dk_fn(xp, *_split(t, case.shapes)))
    return F


def _oracle(case: Case, theta: np.ndarray, w: np.ndarray) -> np.ndarray:
    with mpmath.workdps(case.dps):
        base = np.array([mpmath.mpf(float(v)) for v in theta], dtype=object)
        w_mp = np.array([mpmath.mpf(float(v)) for v in np.ravel(w)], dtype=object).reshape(np.shape(w))

        def F(k, s):
            t = base.copy()
            t[k] = s
            return np.sum(w_mp * np.asarray(case.mp_fn(*_split(t, case.shapes)), dtype=object))
        return np.array([mpmath.diff(lambda s: F(k, s), base[k]) for k in range(theta.size)], dtype=object)


@pytest.fixture(scope="module")
def oracles():
    cache = {}

    def get(case):
        if case.name not in cache:
            theta = _inputs(case)
            w = _weights(case, theta)
            cache[case.name] = theta, w, _oracle(case, theta, w)
        return cache[case.name]
    return get


def _run_or_skip(call):
    try:
        return call()
    except (NotImplementedError, AttributeError) as err:
        pytest.skip(f"op not in this namespace yet: {type(err).__name__}: {str(err)[:120]}")


def _within(got, oracle, rtol, atol=0.0) -> tuple[bool, str]:
    with mpmath.workdps(max(ORACLE_DPS, mpmath.mp.dps)):
        scale = max(abs(v) for v in oracle)
        errs = [abs(mpmath.mpf(g) - o) if not isinstance(g, mpmath.mpf) else abs(g - o) for g, o in zip(got, oracle)]
        bounds = [max(rtol * max(abs(o), scale * mpmath.mpf("1e-3")), atol) for o in oracle]
        worst = max(range(len(errs)), key=lambda k: errs[k] / bounds[k])
        ok = all(e <= b for e, b in zip(errs, bounds))
        return ok, f"component {worst}: got {mpmath.nstr(mpmath.mpf(got[worst]), 20)}, oracle " \
                   f"{mpmath.nstr(oracle[worst], 20)}"


@pytest.mark.parametrize("case", cases("tape"))
def test_tape_rule_matches_the_mpmath_oracle(case, oracles):
    theta, w, oracle = oracles(case)
    r = _run_or_skip(lambda: dk.gradient(_dk_objective(case, w), theta, method="reverse"))
    ok, where = _within([float(g) for g in r.grad.ravel()], oracle, REVERSE_RTOL, atol=TINY)
    assert ok, f"{case.name}: the tape's gradient disagrees with mpmath.diff of the definition at {where}"


@pytest.mark.parametrize("case", cases("referee"))
def test_referee_without_certification_matches_the_mpmath_oracle(case, oracles):
    theta, w, oracle = oracles(case)
    ref = _run_or_skip(lambda: dk.reference(_dk_objective(case, w), theta, digits=30, certify=False))
    ok, where = _within(list(np.ravel(ref.grad_mp)), oracle, REFEREE_RTOL)
    assert ok, f"{case.name}: the mpmath referee (certify=False) disagrees with mpmath.diff at {where}"


@pytest.mark.parametrize("case", cases("certifies"))
def test_referee_certifies_itself(case, oracles):
    theta, w, _ = oracles(case)
    ref = _run_or_skip(lambda: dk.reference(_dk_objective(case, w), theta, digits=30, max_coordinates=theta.size))
    assert ref.certification is not None and ref.certification.agreement_digits >= ref.certification.floor


@pytest.mark.parametrize("case", cases("forward"))
def test_forward_mode_matches_the_mpmath_oracle(case, oracles):
    # dk.jvp along a fixed direction v: the JVP rules (not the VJPs) against oracle . v, summed in mpmath
    theta, w, oracle = oracles(case)
    v = np.random.default_rng(3).uniform(-1.0, 1.0, theta.size)
    _, tangent = _run_or_skip(lambda: dk.jvp(_dk_objective(case, w), theta, v))
    with mpmath.workdps(ORACLE_DPS):
        terms = [o * mpmath.mpf(float(c)) for o, c in zip(oracle, v)]
        expected, scale = sum(terms), sum(abs(t) for t in terms)
        assert abs(mpmath.mpf(float(tangent)) - expected) <= REVERSE_RTOL * scale + TINY, \
            f"{case.name}: dk.jvp gives {float(tangent)!r}, the oracle {mpmath.nstr(expected, 20)}"


@pytest.mark.parametrize("case", cases("forward"))
def test_batched_forward_mode_matches_the_mpmath_oracle(case, oracles):
    # dk.jvp(batch=True) with three directions in one pass: each tangent against oracle . v_i, summed in mpmath
    theta, w, oracle = oracles(case)
    V = np.random.default_rng(5).uniform(-1.0, 1.0, (3, theta.size))
    _, tangents = _run_or_skip(lambda: dk.jvp(_dk_objective(case, w), theta, V, batch=True))
    assert np.shape(tangents) == (3,)
    for v, tangent in zip(V, tangents):
        with mpmath.workdps(ORACLE_DPS):
            terms = [o * mpmath.mpf(float(c)) for o, c in zip(oracle, v)]
            expected, scale = sum(terms), sum(abs(t) for t in terms)
            assert abs(mpmath.mpf(float(tangent)) - expected) <= REVERSE_RTOL * scale + TINY, \
                f"{case.name}: the batched dk.jvp gives {float(tangent)!r}, the oracle {mpmath.nstr(expected, 20)}"
