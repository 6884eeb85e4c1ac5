"""An independent catalogue of every primitive: its value and its derivative, written from the mathematics.

Nothing here calls diffkit.  Elementwise functions give their partial
derivatives in closed form (derived by hand: tanh' = sech^2, lgamma' =
digamma ...).  Array functions give their forward in mpmath (numpy's own
structural functions on object arrays of mpf, mpmath's matrices for linear
algebra), and their derivative is taken from that forward by mpmath's
high-precision numerical differentiation: still no diffkit rule in the path.
``KINKS`` gives each documented convention's value at its kink.
"""
from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass
from typing import Callable

import mpmath
import numpy as np

mp = mpmath


@dataclass(frozen=True)
class Scalar:
    """An elementwise function: ``f(*scalars)`` and its partials ``d[k](*scalars)``."""

    f: Callable
    d: tuple = ()


@dataclass(frozen=True)
class Array:
    """An array function ``f(*object_arrays, **params)`` in mpmath; derivatives by mpmath.diff of ``f``."""

    f: Callable


def sech2(x):
    return mp.sech(x) ** 2


def lgamma(x):
    return mp.re(mp.loggamma(x))


def _obj(fn):
    """A numpy structural function applied to object arrays (numpy itself, not diffkit)."""
    return lambda *xs, **p: fn(*xs, **p)


def _matrices(fn):
    def run(a, *rest, **p):
        a = np.asarray(a, dtype=object)
        if a.ndim > 2:
            return np.array([run(a[i], *[r[i] for r in rest], **p) for i in range(a.shape[0])], dtype=object)
        out = fn(mp.matrix(a.tolist()), *[np.asarray(r, dtype=object) for r in rest], **p)
        return np.array(out.tolist(), dtype=object) if isinstance(out, mp.matrix) else out
    return run


def _solve(A, b):
    B = b.reshape(-1, 1) if b.ndim == 1 else b
    cols = [mp.lu_solve(A, mp.matrix(B[:, j].tolist())) for j in range(B.shape[1])]
    X = np.array([[c[i] for c in cols] for i in range(A.rows)], dtype=object)
    return X.reshape(-1) if b.ndim == 1 else X


def _solve_triangular(A, b, lower=False):
    n = A.rows
    T = mp.matrix(n, n)
    for i in range(n):
        for j in range(n):
            if (j <= i) if lower else (j >= i):
                T[i, j] = A[i, j]
    return _solve(T, b)


def _cholesky(A, upper=False):
    L = mp.cholesky(A)
    L = np.array(L.tolist(), dtype=object)
    return L.T if upper else L


def _sign_of_largest(column):
    """-1 if the column's entry of largest magnitude (the first, on ties) is negative, else 1."""
    best = 0
    for i, v in enumerate(column):
        if abs(v) > abs(column[best]):
            best = i
    return -1 if column[best] < 0 else 1


def _eigh(A):
    """Eigenvalues ascending, eigenvector columns each with its largest entry positive (mpmath's Jacobi method)."""
    E, Q = mp.eigsy(A)
    order = sorted(range(A.rows), key=lambda i: E[i])
    cols = [[Q[r, i] for r in range(A.rows)] for i in order]
    cols = [[_sign_of_largest(c) * v for v in c] for c in cols]
    return np.array([E[i] for i in order], dtype=object), np.array(cols, dtype=object).T


def _svd(A):
    """The reduced SVD: singular values descending; U's columns each with its largest entry positive, V's rows
    signed to match."""
    U, S, V = mp.svd_r(A, full_matrices=False)
    order = sorted(range(len(S)), key=lambda i: -S[i])
    us, vs = [], []
    for i in order:
        col = [U[r, i] for r in range(U.rows)]
        sign = _sign_of_largest(col)
        us.append([sign * v for v in col])
        vs.append([sign * V[i, c] for c in range(V.cols)])
    return np.array(us, dtype=object).T, np.array([S[i] for i in order], dtype=object), np.array(vs, dtype=object)


def _qr(A):
    """The reduced QR by Gram-Schmidt in mpmath (R's diagonal positive by construction)."""
    cols = [[A[r, c] for r in range(A.rows)] for c in range(A.cols)]
    qs, R = [], [[mp.mpf(0)] * A.cols for _ in range(A.cols)]
    for j, a in enumerate(cols):
        v = list(a)
        for i, q in enumerate(qs):
            R[i][j] = mp.fsum(qk * ak for qk, ak in zip(q, a))
            v = [vk - R[i][j] * qk for vk, qk in zip(v, q)]
        R[j][j] = mp.sqrt(mp.fsum(vk * vk for vk in v))
        qs.append([vk / R[j][j] for vk in v])
    return np.array(qs, dtype=object).T, np.array(R, dtype=object)


def _sigmoid(x):
    return 1 / (1 + mp.exp(-x))


def _softplus(x):
    return mp.log(1 + mp.exp(x))


def _lse(x, axis=-1, keepdims=False):
    e = np.frompyfunc(mp.exp, 1, 1)(x)
    return np.frompyfunc(mp.log, 1, 1)(np.sum(e, axis=axis, keepdims=keepdims))


def _softmax(x, axis=-1):
    e = np.frompyfunc(mp.exp, 1, 1)(x)
    return e / np.sum(e, axis=axis, keepdims=True)


def _var(x, axis=None, correction=0.0, keepdims=False):
    n = x.size if axis is None else x.shape[axis]
    m = np.sum(x, axis=axis, keepdims=True) / n
    return np.sum((x - m) * (x - m), axis=axis, keepdims=keepdims) / (n - correction)


def _elementwise(fn):
    return np.frompyfunc(fn, 1, 1)


def _diag_of(x, offset=0):
    n, m = x.shape[-2:]
    rows = [i for i in range(n) if 0 <= i + offset < m]
    return np.stack([x[..., i, i + offset] for i in rows], axis=-1)


def _tri(x, k, lower):
    out = np.array(x, dtype=object, copy=True)
    for i, j in itertools.product(range(x.shape[-2]), range(x.shape[-1])):
        if (j - i > k) if lower else (j - i < k):
            out[..., i, j] = mp.mpf(0)
    return out


def _at_set(x, v, index):
    out = np.array(x, dtype=object, copy=True)
    out[index] = v
    return out


def _at_add(x, v, index):
    out = np.array(x, dtype=object, copy=True)
    np.add.at(out, index, v)
    return out


def _bce(z, y):
    per = _elementwise(_softplus)(z) - z * y
    return np.sum(per) / (z.shape[0] if z.ndim >= 2 else 1)


def _sce(z, y):
    lse = _lse(z, -1, True)
    return -np.sum(y * (z - lse)) / (z.shape[0] if z.ndim >= 2 else 1)


SCALARS = {
    "add": Scalar(lambda x, y: x + y, (lambda x, y: 1, lambda x, y: 1)),
    "subtract": Scalar(lambda x, y: x - y, (lambda x, y: 1, lambda x, y: -1)),
    "multiply": Scalar(lambda x, y: x * y, (lambda x, y: y, lambda x, y: x)),
    "divide": Scalar(lambda x, y: x / y, (lambda x, y: 1 / y, lambda x, y: -x / y ** 2)),
    "negative": Scalar(lambda x: -x, (lambda x: -1,)),
    "positive": Scalar(lambda x: x, (lambda x: 1,)),
    "pow": Scalar(lambda x, y: x ** y, (lambda x, y: y * x ** (y - 1), lambda x, y: x ** y * mp.log(x))),
    "maximum": Scalar(lambda x, y: max(x, y), (lambda x, y: 1 if x > y else 0, lambda x, y: 1 if y > x else 0)),
    "minimum": Scalar(lambda x, y: min(x, y), (lambda x, y: 1 if x < y else 0, lambda x, y: 1 if y < x else 0)),
    "remainder": Scalar(lambda x, y: x - y * mp.floor(x / y), (lambda x, y: 1, lambda x, y: -mp.floor(x / y))),
    "hypot": Scalar(lambda x, y: mp.sqrt(x * x + y * y), (lambda x, y: x / mp.sqrt(x * x + y * y),
                                                          lambda x, y: y / mp.sqrt(x * x + y * y))),
    "atan2": Scalar(mp.atan2, (lambda y, x: x / (x * x + y * y), lambda y, x: -y / (x * x + y * y))),
    "logaddexp": Scalar(lambda x, y: mp.log(mp.exp(x) + mp.exp(y)),
                        (lambda x, y: 1 / (1 + mp.exp(y - x)), lambda x, y: 1 / (1 + mp.exp(x - y)))),
    "xlogy": Scalar(lambda x, y: x * mp.log(y), (lambda x, y: mp.log(y), lambda x, y: x / y)),
    "exp": Scalar(mp.exp, (mp.exp,)),
    "exp2": Scalar(lambda x: mp.mpf(2) ** x, (lambda x: mp.mpf(2) ** x * mp.log(2),)),
    "expm1": Scalar(mp.expm1, (mp.exp,)),
    "log": Scalar(mp.log, (lambda x: 1 / x,)),
    "log1p": Scalar(mp.log1p, (lambda x: 1 / (1 + x),)),
    "log2": Scalar(lambda x: mp.log(x, 2), (lambda x: 1 / (x * mp.log(2)),)),
    "log10": Scalar(mp.log10, (lambda x: 1 / (x * mp.log(10)),)),
    "sqrt": Scalar(mp.sqrt, (lambda x: 1 / (2 * mp.sqrt(x)),)),
    "cbrt": Scalar(mp.cbrt, (lambda x: 1 / (3 * mp.cbrt(x) ** 2),)),
    "square": Scalar(lambda x: x * x, (lambda x: 2 * x,)),
    "reciprocal": Scalar(lambda x: 1 / x, (lambda x: -1 / x ** 2,)),
    "abs": Scalar(abs, (lambda x: mp.sign(x),)),
    "clip": None,  # an array entry below: it has parameters
    "sin": Scalar(mp.sin, (mp.cos,)),
    "cos": Scalar(mp.cos, (lambda x: -mp.sin(x),)),
    "tan": Scalar(mp.tan, (lambda x: mp.sec(x) ** 2,)),
    "asin": Scalar(mp.asin, (lambda x: 1 / mp.sqrt(1 - x * x),)),
    "acos": Scalar(mp.acos, (lambda x: -1 / mp.sqrt(1 - x * x),)),
    "atan": Scalar(mp.atan, (lambda x: 1 / (1 + x * x),)),
    "sinh": Scalar(mp.sinh, (mp.cosh,)),
    "cosh": Scalar(mp.cosh, (mp.sinh,)),
    "tanh": Scalar(mp.tanh, (sech2,)),
    "asinh": Scalar(mp.asinh, (lambda x: 1 / mp.sqrt(1 + x * x),)),
    "acosh": Scalar(mp.acosh, (lambda x: 1 / mp.sqrt(x * x - 1),)),
    "atanh": Scalar(mp.atanh, (lambda x: 1 / (1 - x * x),)),
    "erf": Scalar(mp.erf, (lambda x: 2 / mp.sqrt(mp.pi) * mp.exp(-x * x),)),
    "erfc": Scalar(mp.erfc, (lambda x: -2 / mp.sqrt(mp.pi) * mp.exp(-x * x),)),
    "lgamma": Scalar(lgamma, (mp.digamma,)),
    "digamma": Scalar(mp.digamma, (lambda x: mp.polygamma(1, x),)),
    "sigmoid": Scalar(_sigmoid, (lambda x: _sigmoid(x) * (1 - _sigmoid(x)),)),
    "log_sigmoid": Scalar(lambda x: -mp.log(1 + mp.exp(-x)), (lambda x: 1 - _sigmoid(x),)),
    "softplus": Scalar(_softplus, (_sigmoid,)),
    "relu": Scalar(lambda x: max(x, 0), (lambda x: 1 if x > 0 else 0,)),
    "nextafter": Scalar(lambda x, y: next_float(x, y), (lambda x, y: 1, lambda x, y: 0)),
}

ARRAYS = {
    "clip": Array(lambda x, min=None, max=None: _elementwise(
        lambda v: v if (min is None or v >= min) and (max is None or v <= max)
        else (mp.mpf(min) if min is not None and v < min else mp.mpf(max)))(x)),
    "polygamma": Array(lambda x, n=0: _elementwise(lambda v: mp.polygamma(n, v))(x)),
    "leaky_relu": Array(lambda x, alpha=0.01: _elementwise(lambda v: v if v >= 0 else alpha * v)(x)),
    "sum": Array(lambda x, axis=None, keepdims=False: np.sum(x, axis=axis, keepdims=keepdims)),
    "mean": Array(lambda x, axis=None, keepdims=False: np.sum(x, axis=axis, keepdims=keepdims)
                  / (x.size if axis is None else x.shape[axis])),
    "prod": Array(lambda x, axis=None, keepdims=False: np.prod(x, axis=axis, keepdims=keepdims)),
    "max": Array(lambda x, axis=None, keepdims=False: np.max(x, axis=axis, keepdims=keepdims)),
    "min": Array(lambda x, axis=None, keepdims=False: np.min(x, axis=axis, keepdims=keepdims)),
    "var": Array(_var),
    "std": Array(lambda x, axis=None, correction=0.0, keepdims=False:
                 _elementwise(mp.sqrt)(_var(x, axis, correction, keepdims))),
    "cumulative_sum": Array(lambda x, axis=None: np.cumsum(x, axis=axis)),
    "cumprod": Array(lambda x, axis=None: np.cumprod(x, axis=axis)),
    "reshape": Array(lambda x, shape: np.reshape(x, shape)),
    "permute_dims": Array(lambda x, axes=None: np.transpose(x, axes)),
    "matrix_transpose": Array(lambda x: np.swapaxes(x, -1, -2)),
    "swapaxes": Array(lambda x, axis1=0, axis2=1: np.swapaxes(x, axis1, axis2)),
    "moveaxis": Array(lambda x, source=0, destination=-1: np.moveaxis(x, source, destination)),
    "squeeze": Array(lambda x, axis=None: np.squeeze(x, axis)),
    "expand_dims": Array(lambda x, axis=0: np.expand_dims(x, axis)),
    "flip": Array(lambda x, axis=None: np.flip(x, axis)),
    "roll": Array(lambda x, shift=0, axis=None: np.roll(x, shift, axis)),
    "broadcast_to": Array(lambda x, shape: np.broadcast_to(x, shape)),
    "tile": Array(lambda x, reps: np.tile(x, reps)),
    "repeat": Array(lambda x, repeats=1, axis=None: np.repeat(x, repeats, axis)),
    "concat": Array(lambda *xs, axis=0: np.concatenate(xs, axis=axis)),
    "stack": Array(lambda *xs, axis=0: np.stack(xs, axis=axis)),
    "getitem": Array(lambda x, index: x[index]),
    "take": Array(lambda x, indices, axis=None: np.take(x, np.asarray(indices), axis=axis)),
    "at_set": Array(_at_set),
    "at_add": Array(_at_add),
    "where": Array(lambda c, x, y: np.where(c, x, y)),
    "matmul": Array(lambda x, y: np.matmul(x, y)),
    "einsum": Array(lambda *xs, subscripts: np.einsum(subscripts, *xs, dtype=object)),
    "diagonal": Array(_diag_of),
    "tril": Array(lambda x, k=0: _tri(x, k, True)),
    "triu": Array(lambda x, k=0: _tri(x, k, False)),
    "det": Array(_matrices(mp.det)),
    "logabsdet": Array(_matrices(lambda a: mp.log(abs(mp.det(a))))),
    "inv": Array(_matrices(lambda a: a ** -1)),
    "solve": Array(_matrices(_solve)),
    "cholesky": Array(_matrices(_cholesky)),
    "solve_triangular": Array(_matrices(_solve_triangular)),
    "eigvalsh": Array(_matrices(lambda a: _eigh(a)[0])),
    "eigvecsh": Array(_matrices(lambda a: _eigh(a)[1])),
    "svdvals": Array(_matrices(lambda a: _svd(a)[1])),
    "svd_u": Array(_matrices(lambda a: _svd(a)[0])),
    "svd_vh": Array(_matrices(lambda a: _svd(a)[2])),
    "qr_q": Array(_matrices(lambda a: _qr(a)[0])),
    "qr_r": Array(_matrices(lambda a: _qr(a)[1])),
    "vector_norm": Array(lambda x, axis=None, keepdims=False: _elementwise(mp.sqrt)(np.sum(x * x, axis=axis, keepdims=keepdims))),
    "affine": Array(lambda x, w, b: np.matmul(x, w) + b),
    "sum_of_squares": Array(lambda x: np.sum(x * x)),
    "logsumexp": Array(_lse),
    "softmax": Array(_softmax),
    "log_softmax": Array(lambda x, axis=-1: x - _lse(x, axis, True)),
    "binary_cross_entropy": Array(_bce),
    "softmax_cross_entropy": Array(_sce),
}

# ops without a derivative: only their values are checked
CONSTANTS = {
    "sign": np.frompyfunc(mp.sign, 1, 1), "floor": np.frompyfunc(mp.floor, 1, 1), "ceil": np.frompyfunc(mp.ceil, 1, 1),
    "trunc": np.frompyfunc(lambda v: mp.floor(v) if v >= 0 else mp.ceil(v), 1, 1),
    "round": np.frompyfunc(mp.nint, 1, 1),
    "isfinite": lambda x: np.ones(np.shape(x), bool), "isnan": lambda x: np.zeros(np.shape(x), bool),
    "isinf": lambda x: np.zeros(np.shape(x), bool), "signbit": np.frompyfunc(lambda v: v < 0, 1, 1),
    "equal": lambda x, y: x == y, "not_equal": lambda x, y: x != y, "less": lambda x, y: x < y,
    "less_equal": lambda x, y: x <= y, "greater": lambda x, y: x > y, "greater_equal": lambda x, y: x >= y,
    "argmax": lambda x, axis=None, keepdims=False: np.argmax(x, axis=axis, keepdims=keepdims),
    "argmin": lambda x, axis=None, keepdims=False: np.argmin(x, axis=axis, keepdims=keepdims),
    "argsort": lambda x, axis=-1, descending=False, stable=True: stable_order(x, axis, descending),
    "all": lambda x, axis=None, keepdims=False: np.all(np.asarray(x != 0, bool), axis=axis, keepdims=keepdims),
    "any": lambda x, axis=None, keepdims=False: np.any(np.asarray(x != 0, bool), axis=axis, keepdims=keepdims),
    "count_nonzero": lambda x, axis=None, keepdims=False: np.sum(np.asarray(x != 0, bool), axis=axis,
                                                                keepdims=keepdims),
    "floor_divide": np.frompyfunc(lambda a, b: mp.floor(mp.mpf(a) / b), 2, 1),
    "searchsorted": lambda x, y, side="left": np.array([sum(1 for v in x if (v < w if side == "left" else v <= w))
                                                        for w in np.ravel(y)]).reshape(np.shape(y)),
    "logical_not": lambda x: x == 0, "logical_and": lambda x, y: (x != 0) & (y != 0),
    "logical_or": lambda x, y: (x != 0) | (y != 0), "logical_xor": lambda x, y: (x != 0) ^ (y != 0),
    "nonzero_indices": lambda x: nonzero_rows(x),
    "unique_first_indices": lambda x: np.array(distinct_firsts(x), dtype=np.intp),
    "unique_value_counts": lambda x: np.array([sum(1 for v in np.ravel(x) if v == np.ravel(x)[i])
                                               if np.ravel(x)[i] == np.ravel(x)[i] else 1 for i in distinct_firsts(x)],
                                              dtype=np.intp),
    "unique_inverse_indices": lambda x: inverse_places(x),
    "isin": lambda x1, x2, invert=False: np.array([any(a == b for b in np.ravel(x2)) != invert for a in np.ravel(x1)],
                                                  dtype=bool).reshape(np.shape(x1)),
}


def nonzero_rows(x):
    """The (ndim, k) indices of the entries with x != 0 (NaN included), visited in row-major order."""
    found = [idx for idx in np.ndindex(np.shape(x)) if np.asarray(x, dtype=object)[idx] != 0]
    return np.array([[idx[d] for idx in found] for d in range(np.ndim(x))], dtype=np.intp).reshape(np.ndim(x), -1)


def distinct_firsts(x):
    """The index (row-major) of the first occurrence of each distinct value of x, in ascending order of value:
    a value is new if it equals (==) no earlier one, so each NaN is new; NaNs last, in the order they occur."""
    flat = list(np.ravel(x))
    firsts = []
    for i, v in enumerate(flat):
        if not any(flat[j] == v for j in firsts):
            firsts.append(i)
    numbers = [i for i in firsts if flat[i] == flat[i]]
    for a in range(len(numbers)):  # selection sort by comparisons alone
        low = min(range(a, len(numbers)), key=lambda b: flat[numbers[b]])
        numbers[a], numbers[low] = numbers[low], numbers[a]
    return numbers + [i for i in firsts if flat[i] != flat[i]]


def inverse_places(x):
    """For each entry of x, the place of its value among :func:`distinct_firsts` (x's shape)."""
    flat, firsts = list(np.ravel(x)), distinct_firsts(x)

    def place(i, v):
        if v != v:  # a NaN is a value of its own: its own first occurrence
            return firsts.index(i)
        return next(k for k, j in enumerate(firsts) if flat[j] == v)
    return np.array([place(i, v) for i, v in enumerate(flat)], dtype=np.intp).reshape(np.shape(x))


def next_float(x, y):
    """The float64 after x in the direction of y, from the bits: finite nonzero floats of one sign are ordered as
    their bit patterns (as integers), so the neighbour is the pattern one away; from 0 it is the smallest
    subnormal with y's sign; x == y gives y; a NaN gives NaN."""
    x, y = float(x), float(y)
    if x != x or y != y:
        return mp.mpf("nan")
    if x == y:
        return mp.mpf(y)
    if x == 0:
        return mp.mpf(2) ** -1074 * (1 if y > 0 else -1)
    bits = struct.unpack("<q", struct.pack("<d", x))[0]
    bits += 1 if (y > x) == (x > 0) else -1  # away from zero where y is beyond x, toward it otherwise
    return mp.mpf(struct.unpack("<d", struct.pack("<q", bits))[0])


def stable_order(x, axis, descending):
    """Indices that sort x along ``axis`` by comparisons alone (insertion order for ties), ascending or
    descending: written from the definition, not numpy's argsort."""
    x = np.asarray(x, dtype=object)
    moved = np.moveaxis(x, axis, -1)
    out = np.empty(moved.shape, dtype=np.intp)
    for lead in np.ndindex(moved.shape[:-1]):
        row = list(moved[lead])
        key = (lambda i: -row[i]) if descending else (lambda i: row[i])
        out[lead] = sorted(range(len(row)), key=key)  # (Python's sort is stable)
    return np.moveaxis(out, -1, axis)


# The documented conventions at kinks: (op, input values, expected partials), derived by hand.
KINKS = [
    ("abs", (0.0,), (0.0,)),
    ("relu", (0.0,), (1.0,)),
    ("leaky_relu", (0.0,), (1.0,)),
    ("maximum", (1.5, 1.5), (0.5, 0.5)),
    ("minimum", (-2.0, -2.0), (0.5, 0.5)),
    ("clip", (1.0,), (1.0,)),
    ("hypot", (0.0, 0.0), (0.0, 0.0)),
]


def derivative_kind(name: str) -> str:
    if name in SCALARS and SCALARS[name] is not None:
        return "scalar"
    if name in ARRAYS:
        return "array"
    if name in CONSTANTS:
        return "constant"
    return "missing"
