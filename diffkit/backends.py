"""Array namespaces generated from the primitive table, one per value backend: numpy, complex step, mpmath, SymPy.

A user function asks ``xp = dk.namespace(theta)`` and calls ``xp.exp``,
``xp.linalg.slogdet``, ``xp.at(x)[i].set(v)``...  This is SymPy's lambdify
translation table run in reverse: instead of translating one expression into
many namespaces, every backend *supplies* a namespace with the same names,
and all of them are built here from :data:`diffkit.primitives.PRIMITIVES`
(the traces' namespaces, for tape arrays and duals, from the same table in
:mod:`diffkit.tape.namespace`).  A name a backend lacks raises an error that
names the backend, the op and the reason; nothing falls through to numpy.

>>> import numpy as np, diffkit as dk
>>> xp = dk.namespace(np.ones(3))
>>> xp.name, float(xp.lgamma(np.array(5.0)))           # log(4!)
('numpy', 3.1780538303479458)
>>> sign, logdet = xp.linalg.slogdet(np.diag([2.0, -3.0]))
>>> float(sign), round(float(logdet), 12)
(-1.0, 1.791759469228)
"""
from __future__ import annotations

from collections import namedtuple
from typing import Any, Callable

import mpmath
import numpy as np

from .dispatch import TRACERS, NotAnalyticError, dtype_kind, namespace, register_backend, set_default, strip
from .primitives import OBJECT, PRIMITIVES, SAME, NotAnalytic, Unsupported

__all__ = ["Namespace", "NUMPY", "COMPLEX", "MP", "sympy_namespace", "namespace", "register_backend",
           "NotAnalyticError", "to_mp", "LINALG", "SlogdetResult", "ComplexStep"]

LINALG = ("det", "slogdet", "inv", "solve", "cholesky", "solve_triangular", "norm", "vector_norm", "diagonal",
          "trace", "outer", "matmul", "tensordot", "vecdot", "matrix_transpose", "eigh", "eigvalsh", "svd", "svdvals",
          "qr", "cross", "matrix_power", "matrix_norm", "pinv", "matrix_rank")
# (the decompositions' one-output primitives are linalg-only too: xp.linalg.eigvecsh, svd_u, svd_vh, qr_q, qr_r)
_LINALG_ONLY = {"det", "slogdet", "inv", "solve", "cholesky", "solve_triangular", "norm", "vector_norm",
                "logabsdet", "eigvalsh", "eigvecsh", "svdvals", "svd_u", "svd_vh", "qr_q", "qr_r"}
SlogdetResult = namedtuple("SlogdetResult", "sign logabsdet")
EighResult = namedtuple("EighResult", "eigenvalues eigenvectors")
SVDResult = namedtuple("SVDResult", "U S Vh")
QRResult = namedtuple("QRResult", "Q R")


def _lift(fn: Callable, n: int) -> Callable:
    """A scalar function of ``n`` numbers as a function of object arrays (numpy broadcasting)."""
    ufunc = np.frompyfunc(fn, n, 1)
    return lambda *xs: ufunc(*xs)


def _lift_with_params(fn: Callable, n: int) -> Callable:
    plain = _lift(fn, n)

    def lifted(*xs, **params):
        if not params:
            return plain(*xs)
        return np.frompyfunc(lambda *s: fn(*s, **params), n, 1)(*xs)
    return lifted


def _refusal(prim, backend: str, reason: Any) -> Callable:
    def refuse(*args, **kwargs):
        if isinstance(reason, NotAnalytic):
            raise NotAnalyticError(f"{prim.name}: {reason.reason}")
        why = reason.reason if isinstance(reason, Unsupported) else "the table declares no forward for it"
        raise NotImplementedError(f"op {prim.name!r} is not available in the {backend} backend: {why}")
    return refuse


def resolve(prim, backend: str) -> tuple[Callable, Any]:
    """``(forward in primitive form, reason or None)`` of ``prim`` for a value backend."""
    impl = prim.impls.get(backend)
    if impl is None or isinstance(impl, (NotAnalytic, Unsupported)):
        return _refusal(prim, backend, impl), impl or "missing"
    if impl is SAME or impl is OBJECT:
        return prim.impls["numpy"], None
    if backend in ("mpmath", "sympy") and prim.kind == "elementwise":
        n = 1 if prim.variadic else len(prim.inputs)
        return (_lift_with_params(impl, n) if prim.params else _lift(impl, n)), None
    return impl, None


def user_form(prim, fn: Callable, traced: bool = False) -> Callable:
    """The namespace's function: the user-facing signature (``concat(arrays, axis)``), the output alone
    (a trace's ``fn`` already drops the residual a forward hands its rule)."""
    residual = prim.residual and not traced
    if prim.api is not None:
        api = prim.api
        if residual:
            return lambda *a, **k: _first(fn, *api(*a, **k))
        return lambda *a, **k: _call(fn, *api(*a, **k))
    if residual:
        return lambda *a, **k: fn(*a, **k)[0]
    if prim.params and not prim.variadic and not getattr(fn, "takes_positional_params", False):
        return _positional_params(fn, len(prim.inputs), tuple(prim.params))
    return fn  # (the tape's C recorder takes params by position itself)


def _positional_params(fn: Callable, n_inputs: int, names: tuple) -> Callable:
    """Params given by position, as numpy allows (``xp.sum(x, 0)``, ``xp.roll(x, 1, axis=1)``), passed by name:
    a trace must see them as params, not as more inputs."""
    def call(*args, **params):
        if len(args) > n_inputs:
            extra = args[n_inputs:]
            if len(extra) > len(names):
                raise TypeError(f"{fn!r} takes {n_inputs} array(s) and the params {', '.join(names)}; got "
                                f"{len(args)} positional arguments")
            params = {**dict(zip(names, extra)), **params}
            args = args[:n_inputs]
        return fn(*args, **params)
    return call


def _call(fn, inputs, params):
    return fn(*inputs, **params)


def _first(fn, inputs, params):
    return fn(*inputs, **params)[0]


class _Linalg:
    """``xp.linalg``: the array API's linear-algebra extension."""

    def __init__(self, ops: dict):
        for name, fn in ops.items():
            setattr(self, name, fn)

    def __getattr__(self, op: str):
        if op.startswith("__"):
            raise AttributeError(op)
        raise NotImplementedError(f"op 'linalg.{op}' is not in diffkit's primitive table; available: "
                                  f"{', '.join(LINALG)}")


class _At:
    """``xp.at(x)[index].set(v)`` / ``.add(v)``: functional updates (a new array; x is unchanged)."""

    __slots__ = ("xp", "x", "index")

    def __init__(self, xp, x, index=None):
        self.xp, self.x, self.index = xp, x, index

    def __getitem__(self, index):
        return _At(self.xp, self.x, index)

    def set(self, value):
        return self.xp.at_set(self.x, value, index=_plain_index(self.index))

    def add(self, value):
        return self.xp.at_add(self.x, value, index=_plain_index(self.index))


def _plain_index(index):
    if type(index) is tuple:
        return tuple(strip(i) for i in index)
    return strip(index)


class Namespace:
    """A namespace with one function per primitive of the table, for one backend.

    ``impls[prim.index]`` is each primitive's forward in primitive form
    (``forward(*inputs, **params)``): what a tape with these values runs.
    """

    from_table = True  # (diffkit.nn asks this of the class: a peer namespace's getattr would raise)
    convert = None  # how a tape over these values brings constants in (the array API's: numpy data to its own)

    def __init__(self, name: str, backend: str, forward: Callable[[Any], tuple[Callable, Any]],
                 constants: dict | None = None):
        self.name = name
        self.backend = backend
        self.impls: list = [None] * len(PRIMITIVES)
        self.reasons: dict = {}  # op -> why this backend lacks it
        for prim in PRIMITIVES.values():
            fn, reason = forward(prim)
            self.impls[prim.index] = fn
            if reason is not None:
                self.reasons[prim.name] = reason
            plain = prim.value if backend == "numpy" and prim.value is not None else None
            install(self, prim, plain or user_form(prim, fn))  # (a residual's numpy value: no residual made)
        finish(self, constants)

    def at(self, x):
        return _At(self, x)

    def __getattr__(self, op: str):
        raise not_in_table(op, f"in the {self.name} backend")

    def __repr__(self) -> str:
        return f"<diffkit namespace {self.name!r}>"


def not_in_table(op: str, where: str) -> Exception:
    """The error for a name a namespace lacks (AttributeError for private names, so hasattr works)."""
    if op.startswith("_"):
        return AttributeError(op)
    hint = f" (did you mean xp.linalg.{op}?)" if op in _LINALG_ONLY else ""
    return NotImplementedError(f"op {op!r} is not available {where}: it is not in diffkit's primitive table{hint}; "
                               f"compose it from the table's ops (`diffkit primitives` lists them) or define it "
                               f"with dk.Function")


def install(ns: Any, prim, fn: Callable) -> None:
    """Put ``fn`` in ``ns`` under the primitive's name and aliases (the linalg-only ones as ``_name``)."""
    for n in (prim.name, *prim.aliases):
        setattr(ns, "_" + n if n in _LINALG_ONLY else n, fn)


def finish(ns: Any, constants: dict | None) -> None:
    """The composed ops, ``xp.linalg`` and the constants: what every namespace has beside the primitives."""
    for op, fn in DERIVED.items():
        setattr(ns, op, _bind(fn, ns))
    ns.linalg = _Linalg({**{op: getattr(ns, op) for op in LINALG if op not in _LINALG_ONLY},
                        **{op: getattr(ns, "_" + op) for op in _LINALG_ONLY if hasattr(ns, "_" + op)},
                        "slogdet": ns.slogdet, "norm": ns.norm, "vector_norm": ns.vector_norm})
    for key, value in (constants or {}).items():
        setattr(ns, key, value)


def _bind(fn, xp):
    return lambda *args, **kwargs: fn(xp, *args, **kwargs)


# --- ops composed from the table's primitives: one definition serves every backend ---------

def _ravel(xp, x):
    return xp.reshape(x, (-1,))


def _dot(xp, x, y):
    nx, ny = len(getattr(x, "shape", ())), len(getattr(y, "shape", ()))
    if nx == 0 or ny == 0:
        return xp.multiply(x, y)
    if nx <= 2 and ny <= 2:
        return xp.matmul(x, y)
    raise NotImplementedError("dot of arrays with more than two axes has numpy's special meaning; write it with "
                              "xp.tensordot or xp.einsum")


def _vecdot(xp, x, y, axis=-1):
    return xp.sum(x * y, axis=axis)


def _outer(xp, x, y):
    return xp.reshape(x, (-1, 1)) * xp.reshape(y, (1, -1))


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _tensordot(xp, x, y, axes=2):
    nx, ny = len(x.shape), len(y.shape)
    if isinstance(axes, int):
        ax, ay = list(range(nx - axes, nx)), list(range(axes))
    else:
        ax, ay = [a % nx for a in np.atleast_1d(axes[0])], [a % ny for a in np.atleast_1d(axes[1])]
    sx, sy = list(_LETTERS[:nx]), list(_LETTERS[nx:nx + ny])
    for i, j in zip(ax, ay):
        sy[j] = sx[i]
    out = [c for k, c in enumerate(sx) if k not in ax] + [c for k, c in enumerate(sy) if k not in ay]
    return xp.einsum(f"{''.join(sx)},{''.join(sy)}->{''.join(out)}", x, y)


def _trace(xp, x, offset=0):
    return xp.sum(xp.diagonal(x, offset=offset), axis=-1)


def _diag(xp, v, k=0):
    if len(v.shape) == 2:
        return xp.diagonal(v, offset=k)
    n = v.shape[0] + abs(k)
    rows = np.arange(v.shape[0]) + max(0, -k)
    return xp.at(xp.zeros((n, n)))[rows, rows + k].set(v)


def _slogdet(xp, x):
    return SlogdetResult(xp.sign(xp._det(x)), xp._logabsdet(x))


def _matrices(op: str, x) -> tuple:
    """x's matrix shape (its last two axes), or ValueError naming the op: a decomposition needs a matrix."""
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) < 2:
        raise ValueError(f"{op}: needs (a stack of) matrices, an array of at least 2 axes; got shape {shape} "
                         f"(reshape a vector to (n, 1) or (1, n))")
    return shape[-2:]


def _eigh(xp, x):
    """The eigenvalues (ascending) and eigenvectors (columns) of a symmetric matrix: :mod:`.primitives.decompositions`
    has the conventions."""
    _square_matrix("eigh", x)
    return EighResult(xp._eigvalsh(x), xp._eigvecsh(x))


def _svd(xp, x, full_matrices=True):
    """``U, S, Vh`` with ``x = U diag(S) Vh``.  A square matrix's full SVD is its reduced one; a non-square one's
    extra columns of U or V are not unique, so they have no derivative, and diffkit asks for the reduced SVD."""
    m, n = _matrices("svd", x)
    if full_matrices and m != n:
        raise NotImplementedError(f"svd: full_matrices=True on a {m} x {n} matrix adds {abs(m - n)} columns to "
                                  f"{'U' if m > n else 'V'} that are not unique functions of the matrix, so they have "
                                  f"no derivative; pass full_matrices=False (the reduced SVD)")
    return SVDResult(xp._svd_u(x), xp._svdvals(x), xp._svd_vh(x))


def _qr(xp, x, mode="reduced"):
    """``Q, R`` with R's diagonal positive.  ``mode='complete'`` is the reduced QR where that is the same (rows <=
    columns); a tall matrix's complete Q has columns that are not unique, and is refused."""
    if mode not in ("reduced", "complete"):
        raise ValueError(f"qr: mode must be 'reduced' or 'complete'; got {mode!r}")
    if mode == "complete" and _matrices("qr", x)[0] > x.shape[-1]:
        raise NotImplementedError(f"qr: mode='complete' on a {x.shape[-2]} x {x.shape[-1]} matrix adds columns to Q "
                                  f"that are not unique functions of it, so they have no derivative; use "
                                  f"mode='reduced'")
    _matrices("qr", x)
    return QRResult(xp._qr_q(x), xp._qr_r(x))


def _cross(xp, x1, x2, axis=-1):
    """The cross product of 3-vectors along ``axis`` (after broadcasting), from products and differences."""
    shape = np.broadcast_shapes(tuple(x1.shape), tuple(x2.shape))
    axis = _axis("cross", axis, len(shape))
    if shape[axis] != 3:
        raise ValueError(f"cross: axis {axis} has size {shape[axis]}; the cross product needs size 3 there")
    lead = (slice(None),) * axis
    a = [xp.broadcast_to(x1, shape)[lead + (i,)] for i in range(3)]
    b = [xp.broadcast_to(x2, shape)[lead + (i,)] for i in range(3)]
    return xp.stack([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]], axis=axis)


def _square_matrix(op: str, x) -> int:
    m, n = _matrices(op, x)
    if m != n:
        raise ValueError(f"{op}: needs (a stack of) square matrices; got shape {tuple(x.shape)}")
    return n


def _matrix_power(xp, x, n):
    """``x`` to the integer power ``n`` by repeated squaring (a negative ``n`` through the inverse; ``n = 0``: the
    identity, a constant)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise TypeError(f"matrix_power: n must be an integer; got {n!r}")
    k = _square_matrix("matrix_power", x)
    if n == 0:
        return xp.broadcast_to(xp.eye(k), tuple(x.shape))
    base, n, result = (xp._inv(x), -n, None) if n < 0 else (x, n, None)
    while n:
        if n & 1:
            result = base if result is None else result @ base
        n >>= 1
        if n:
            base = base @ base
    return result


def _matrix_norm(xp, x, keepdims=False, ord="fro"):
    """The array API's matrix norms over the last two axes: Frobenius, nuclear (the sum of the singular values),
    2 / -2 (the largest / smallest), 1 / -1 (column sums of |x|), inf / -inf (row sums)."""
    _matrices("matrix_norm", x)
    if ord == "fro":
        return xp._vector_norm(x, axis=(-2, -1), keepdims=keepdims)
    if ord in ("nuc", 2, -2):
        s = xp._svdvals(x)
        out = xp.sum(s, axis=-1) if ord == "nuc" else xp.max(s, axis=-1) if ord == 2 else xp.min(s, axis=-1)
    elif ord in (1, -1, np.inf, -np.inf):
        sums = xp.sum(xp.abs(x), axis=-2 if ord in (1, -1) else -1)
        out = xp.max(sums, axis=-1) if ord > 0 else xp.min(sums, axis=-1)
    else:
        raise ValueError(f"matrix_norm: ord {ord!r} is not a matrix norm; valid: 'fro', 'nuc', 1, -1, 2, -2, inf, "
                         f"-inf")
    return xp.expand_dims(xp.expand_dims(out, axis=-1), axis=-1) if keepdims else out


def _rtol(op: str, x, rtol):
    return max(_matrices(op, x)) * np.finfo(np.float64).eps if rtol is None else rtol


def _pinv(xp, x, rtol=None):
    """The Moore-Penrose inverse through the reduced SVD; singular values at or below ``rtol`` times the largest
    count as zero (default: max(M, N) * eps, the array API's)."""
    rtol = _rtol("pinv", x, rtol)
    s = xp._svdvals(x)
    keep = s > rtol * xp.max(s, axis=-1, keepdims=True)
    s_inv = xp.where(keep, 1.0 / xp.where(keep, s, 1.0), 0.0)
    return (xp.matrix_transpose(xp._svd_vh(x)) * xp.expand_dims(s_inv, axis=-2)) @ xp.matrix_transpose(xp._svd_u(x))


def _matrix_rank(xp, x, rtol=None):
    """How many singular values exceed ``rtol`` times the largest (an integer: no derivative)."""
    rtol = _rtol("matrix_rank", x, rtol)
    s = xp._svdvals(x)
    return xp.count_nonzero(s > rtol * xp.max(s, axis=-1, keepdims=True), axis=-1)


def _norm(xp, x, ord=None, axis=None, keepdims=False):
    if ord in (None, 2, "fro") and not (ord == 2 and axis is None and len(x.shape) == 2):
        return xp._vector_norm(x, axis=axis, keepdims=keepdims)
    if ord == 1 and (axis is not None or len(x.shape) == 1):
        return xp.sum(xp.abs(x), axis=axis, keepdims=keepdims)
    if ord in (np.inf, float("inf")) and (axis is not None or len(x.shape) == 1):
        return xp.max(xp.abs(x), axis=axis, keepdims=keepdims)
    raise NotImplementedError(f"norm with ord={ord!r} on shape {tuple(x.shape)} is not in diffkit's table; "
                              f"vector 2-, 1- and inf-norms and the Frobenius norm are")


def _vector_norm_api(xp, x, axis=None, keepdims=False, ord=2):
    return _norm(xp, x, ord=ord, axis=axis if axis is not None or len(x.shape) == 1 else None, keepdims=keepdims)


def _axis(op: str, axis: int, ndim: int) -> int:
    """``axis`` of an ``ndim``-axis array as a non-negative index, or ValueError naming the op and the range."""
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool) or not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis!r} is out of range for an array of {ndim} axes; "
                         f"valid: {-ndim} .. {ndim - 1}")
    return int(axis) % ndim


def _take_along_axis(xp, x, indices, axis=-1):
    """numpy's ``take_along_axis`` as one gather, ``x[grid]``: repeated indices add their gradients (getitem's
    rule); ``indices`` are constants (argsort's, argmax's)."""
    shape = tuple(x.shape)
    axis = _axis("take_along_axis", axis, len(shape))
    ixp = np if isinstance(indices, (np.ndarray, list)) else indices.__array_namespace__()
    indices = ixp.asarray(indices)
    if len(indices.shape) != len(shape):
        raise ValueError(f"take_along_axis: indices have {len(indices.shape)} axes, x has {len(shape)}; they must "
                         f"have as many (use expand_dims on the indices)")
    grid = tuple(indices if d == axis else ixp.reshape(ixp.arange(shape[d]), tuple(-1 if k == d else 1
                                                                                   for k in range(len(shape))))
                 for d in range(len(shape)))
    return x[grid]


def _sort(xp, x, axis=-1, descending=False, stable=True):
    """x sorted along ``axis``: a gather at argsort's (stable) indices; each entry's gradient goes back to the
    entry that landed there, ties in their original order."""
    axis = _axis("sort", axis, len(x.shape))
    return _take_along_axis(xp, x, xp.argsort(x, axis=axis, descending=descending), axis=axis)


def _diff(xp, x, axis=-1, n=1, prepend=None, append=None):
    """The ``n``-th forward difference along ``axis``, with ``prepend``/``append`` (scalars or arrays) joined on."""
    axis = _axis("diff", axis, len(x.shape))
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"diff: n is the order of the difference, an integer >= 0; got {n!r}")
    if prepend is not None or append is not None:
        def along(v):  # a scalar becomes one slice along the axis, as numpy's diff takes it
            if len(getattr(v, "shape", ())) == 0:
                return xp.broadcast_to(v, tuple(1 if k == axis else d for k, d in enumerate(x.shape)))
            return v
        x = xp.concat([along(v) for v in (prepend, x, append) if v is not None], axis=axis)
    lead = (slice(None),) * axis
    for _ in range(n):
        x = x[lead + (slice(1, None),)] - x[lead + (slice(None, -1),)]
    return x


def _unstack(xp, x, axis=0):
    axis = _axis("unstack", axis, len(x.shape))
    return tuple(x[(slice(None),) * axis + (i,)] for i in range(x.shape[axis]))


def _broadcast_arrays(xp, *arrays):
    shape = np.broadcast_shapes(*(tuple(getattr(a, "shape", ())) for a in arrays))
    return [xp.broadcast_to(a, shape) for a in arrays]


def _copysign(xp, x1, x2):
    """|x1| with the sign of x2 (-0.0 counts as negative): its derivative in x1 is sign(x1) sign(x2), abs's
    convention at x1 = 0; in x2 it is 0."""
    return xp.abs(x1) * xp.where(xp.signbit(x2), -1.0, 1.0)


def _astype(xp, x, dtype, copy=True, device=None):
    """A cast.  A trace keeps its float64 values under a floating dtype (derivative 1: the tape differentiates in
    float64; cast the result if you need less); to an integer or bool dtype it is a constant (no derivative),
    truncated toward zero as numpy casts.  mpmath values stay mpmath, and the complex step's values complex,
    under a floating dtype."""
    if type(x) not in TRACERS and getattr(x, "dtype", None) != object and getattr(xp, "name", None) != "complex":
        return _cast(x, dtype, copy)  # (plain values; the complex step's carry i h, which a float cast would drop)
    if dtype_kind(dtype) in "fc":
        return x
    return _cast(xp.not_equal(x, 0) if dtype_kind(dtype) == "b" else xp.trunc(x), dtype, True)


def _cast(x, dtype, copy: bool):
    """Plain values in ``dtype`` by their own library: numpy's method, the array API's ``astype`` function (its
    arrays have no method), numpy's cast of mpmath numbers or Python scalars."""
    if hasattr(x, "astype") and getattr(x, "dtype", None) != object:
        return x.astype(dtype, copy=copy)
    if hasattr(x, "__array_namespace__") and not isinstance(x, np.ndarray):
        return x.__array_namespace__().astype(x, dtype, copy=copy)
    return np.asarray(x).astype(dtype)


from .array_api_sets import BITWISE, SETS  # noqa: E402  (nonzero, unique_*: composed of constant primitives)

DERIVED = {"ravel": _ravel, "dot": _dot, "vecdot": _vecdot, "outer": _outer, "tensordot": _tensordot,
           "trace": _trace, "diag": _diag, "slogdet": _slogdet, "norm": _norm, "vector_norm": _vector_norm_api,
           "take_along_axis": _take_along_axis, "sort": _sort, "diff": _diff, "unstack": _unstack,
           "broadcast_arrays": _broadcast_arrays, "copysign": _copysign, "astype": _astype, "eigh": _eigh,
           "svd": _svd, "qr": _qr, "cross": _cross, "matrix_power": _matrix_power, "matrix_norm": _matrix_norm,
           "pinv": _pinv, "matrix_rank": _matrix_rank,
           **SETS, **BITWISE,  # (diffkit.array_api_sets: nonzero, unique_*, the bitwise functions)
           "real": lambda xp, x: x, "conj": lambda xp, x: x, "imag": lambda xp, x: xp.zeros_like(x)}
# (real, conj, imag: every function diffkit differentiates is real, so a real array's parts)


# --- constants and constructors (not recorded: they make data) ------------------------------

# what a trace's namespace takes from the namespace of its values (dtypes, constructors, shape arithmetic)
CONSTANT_NAMES = (
    "pi", "e", "inf", "nan", "newaxis", "float64", "float32", "int64", "int32", "int16", "int8", "uint64", "uint32",
    "uint16", "uint8", "complex64", "complex128", "bool", "bool_", "zeros", "ones", "full", "empty", "eye", "arange",
    "linspace", "asarray", "array", "zeros_like", "ones_like", "full_like", "empty_like", "shape", "ndim", "size",
    "result_type", "finfo", "iinfo", "isscalar", "errstate", "meshgrid", "indices", "ix_", "tri", "broadcast_shapes",
    "can_cast", "isdtype", "from_dlpack", "__array_namespace_info__")  # (the last: the values' devices, dtypes)
_NUMPY_CONSTANTS = {n: getattr(np, "bool_" if n == "bool" else n) for n in CONSTANT_NAMES + ("copy",) if
                    hasattr(np, n) or n == "bool"}  # (isdtype: numpy >= 2)


def _object_constants(scalar: Callable, extra: dict) -> dict:
    def full(shape, value, dtype=None):
        return np.full(shape, scalar(value), dtype=object)

    consts = {n: v for n, v in _NUMPY_CONSTANTS.items() if n != "__array_namespace_info__"}  # (not numpy's floats)
    consts.update(zeros=lambda shape, dtype=None: full(shape, 0), ones=lambda shape, dtype=None: full(shape, 1),
                  full=full, zeros_like=lambda x, dtype=None: full(np.shape(x), 0),
                  empty_like=lambda x, dtype=None: full(np.shape(x), 0),
                  ones_like=lambda x, dtype=None: full(np.shape(x), 1),
                  full_like=lambda x, v, dtype=None: full(np.shape(x), v),
                  eye=lambda n, m=None, k=0, dtype=None: np.where(np.eye(n, m, k) == 1, scalar(1), scalar(0)))
    consts.update(extra)
    return consts


def to_mp(x: Any) -> np.ndarray:
    """Floats as an object array of ``mpmath.mpf``, exactly (bit for bit)."""
    arr = np.asarray(x, dtype=float)
    out = np.empty(arr.shape, dtype=object)
    out.flat[:] = [mpmath.mpf(float(v)) for v in arr.flat]
    return out


def _first_object(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.flat[0] if x.dtype == object and x.size else None
    return x


# --- the complex step ------------------------------------------------------------------------

def _real_part(x: Any) -> Any:
    return np.asarray(x).real


class ComplexStep(np.ndarray):
    """``theta + i h e_k`` as the complex step hands it to f: its comparisons (``<  <=  >  >=  ==  !=``) compare
    the real parts.  ``x + ih`` with h tiny *is* x to the branches of f (``where(t > 0, ...)`` at t = 0 must take
    the real f's branch); numpy alone orders complex numbers by (real, imag), so the branch would follow h.

    Ufuncs keep the type, and so do the complex namespace's ops; a scalar taken out (``t[0]``) is numpy's own
    complex scalar, so compare arrays (``t[0:1]``) or use ``xp.greater``, which always compares real parts.

    >>> t = np.array([0 + 1e-20j, 1.0]).view(ComplexStep)
    >>> (t > 0).tolist(), (t == 0).tolist(), (np.sin(t) > 0).tolist()
    ([False, True], [True, False], [False, True])
    """

    def __lt__(self, other):
        return np.less(_real_part(self), _real_part(other))

    def __le__(self, other):
        return np.less_equal(_real_part(self), _real_part(other))

    def __gt__(self, other):
        return np.greater(_real_part(self), _real_part(other))

    def __ge__(self, other):
        return np.greater_equal(_real_part(self), _real_part(other))

    def __eq__(self, other):
        return np.equal(_real_part(self), _real_part(other))

    def __ne__(self, other):
        return np.not_equal(_real_part(self), _real_part(other))

    __hash__ = None


def _keeps_step(forward: tuple[Callable, Any]) -> tuple[Callable, Any]:
    """A complex forward whose complex array results stay :class:`ComplexStep` (np.where, concatenate ... return
    plain arrays), so that a comparison after them still looks at the real parts."""
    fn, reason = forward
    if reason is not None:
        return fn, reason

    def run(*args, **params):
        out = fn(*args, **params)
        return out.view(ComplexStep) if type(out) is np.ndarray and out.dtype.kind == "c" else out
    return run, None


NUMPY = Namespace("numpy", "numpy", lambda prim: resolve(prim, "numpy"), _NUMPY_CONSTANTS)
COMPLEX = Namespace("complex", "complex", lambda prim: _keeps_step(resolve(prim, "complex")), _NUMPY_CONSTANTS)
MP = Namespace("mpmath", "mpmath", lambda prim: resolve(prim, "mpmath"),
               _object_constants(mpmath.mpf, {"pi": mpmath.pi, "e": mpmath.e, "inf": mpmath.inf, "nan": mpmath.nan}))
_SYMPY: list = []


def sympy_namespace() -> Namespace:
    """The SymPy namespace, built on first use (importing SymPy takes a second)."""
    if not _SYMPY:
        import sympy

        from .sympy_backend import to_sympy
        ns = Namespace("sympy", "sympy", lambda prim: resolve(prim, "sympy"),
                       _object_constants(to_sympy, {"pi": sympy.pi, "e": sympy.E, "inf": sympy.oo}))
        ns.scatter_add = _scatter_adder(ns.zeros)
        ns.to_float = _identity
        _SYMPY.append(ns)
    return _SYMPY[0]


def _is_mp(x: Any) -> bool:
    return isinstance(_first_object(x), (mpmath.mpf, mpmath.mpc))


def _is_sympy(x: Any) -> bool:
    first = _first_object(x)
    return type(first).__module__.startswith("sympy")


def _is_complex(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return x.dtype.kind == "c"
    return isinstance(x, (complex, np.complexfloating))


def _identity(x):
    return x


def _scatter_adder(zeros: Callable) -> Callable:
    def scatter_add(buf, owned, shape, index, c):
        """Add ``c`` into ``buf[index]`` (a fresh zero buffer when there is none); returns (buffer, owned)."""
        if buf is None or not owned:
            buf = zeros(shape) if buf is None else zeros(shape) + buf
        return _add_into(buf, index, c)
    return scatter_add


def _add_into(buf, index, c):
    if _is_basic_index(index):
        buf[index] += c
    else:
        np.add.at(buf, index, c)  # repeated integer indices must add up, which buf[index] += c would not do
    return buf, True


def _is_basic_index(index) -> bool:
    if type(index) is np.ndarray:  # (a gather's indices: the commonest index here)
        return False
    parts = index if type(index) is tuple else (index,)
    return all(type(p) in (slice, int, type(None), type(Ellipsis)) or isinstance(p, np.integer) for p in parts)


for _ns in (NUMPY, COMPLEX, MP):
    _ns.scatter_add = _scatter_adder(_ns.zeros)
    _ns.to_float = _identity  # numpy multiplies by booleans as 0/1; the array API needs an explicit cast

set_default(NUMPY)
register_backend("sympy", _is_sympy, loader=lambda array: sympy_namespace())
register_backend("mpmath", _is_mp, MP)
register_backend("complex", _is_complex, COMPLEX)
