"""Linear algebra: products, einsum, triangles and diagonals, determinants, inverses, solves, Cholesky, norms.

Products are multilinear, so their JVP is the forward with one input replaced
by its tangent at a time.  The matrix rules are the standard ones (Giles 2008,
"Extended collection of matrix derivative results"; Murray 2016 for
Cholesky): ``det' = det A^-T``, ``inv' : -A^-T g A^-T``, ``solve'``: one
transposed solve.  ``slogdet`` is two ops: the sign (a constant) and
``logabsdet`` (rule ``g A^-T``).  Matrices act on the last two axes; leading
axes are batches.  ``diagonal`` follows the array API (the last two axes), not
numpy's first two.

Conventions: ``vector_norm``/``norm`` has gradient 0 at x = 0; ``det``, ``inv``
and ``solve`` of a singular matrix are not differentiable (inf/nan, as numpy).
"""
from __future__ import annotations

import math

import mpmath
import numpy as np

from .lazy import scipy_linalg, sympy, sympy_backend
from .table import OBJECT, SAME, Domain, Unsupported, defprim

SQUARE = Domain(-1.0, 1.0, shapes=(((3, 3),), ((2, 3, 3),)), matrix="square")
SPD = Domain(-1.0, 1.0, shapes=(((3, 3),),), matrix="spd")


def _mT(xp, a):
    return a.mT if type(a) is np.ndarray else xp.matrix_transpose(a)  # (numpy's swapaxes is a Python wrapper)


def _matmul_numpy(x, y):
    """``np.matmul``, except that a stack of matrices times one matrix is one product of the stacked rows:
    numpy multiplies a stack one matrix at a time (26 x (3, 88) @ (88, 544): 0.89 ms, against 0.24 ms as one
    product on this machine)."""
    if type(x) is np.ndarray and x.ndim > 2 and type(y) is np.ndarray and y.ndim == 2 and x.dtype == y.dtype:
        rows = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])
        return np.matmul(rows, y).reshape(x.shape[:-1] + y.shape[-1:])
    return np.matmul(x, y)


def _matmul_x(g, y, x_shape, xp):
    y_ndim = len(getattr(y, "shape", ()))
    if len(x_shape) > 2 and y_ndim == 2:  # a stack times one matrix: the table's matmul, one product
        return xp.matmul(g, _mT(xp, y))
    if y_ndim == 1:  # (a stack of) matrices times a vector, or two vectors (g is then a number)
        return xp.expand_dims(g, axis=-1) * y
    if len(x_shape) == 1:  # a vector times a stack of matrices: one sum per matrix (the tape sums the stack)
        return xp.sum(xp.expand_dims(g, axis=-2) * y, axis=-1)
    return g @ _mT(xp, y)


def _matmul_y(g, x, y_shape, xp):
    x_ndim = len(getattr(x, "shape", ()))
    if x_ndim == 1 and len(y_shape) == 1:
        return g * x
    if x_ndim == 1:  # the outer product x g^T (per matrix of a stack)
        return xp.expand_dims(x, axis=-1) * xp.expand_dims(g, axis=-2)
    if len(y_shape) == 1:  # (a stack of) matrices times a vector: x^T g, one row product per matrix
        return (xp.expand_dims(g, axis=-2) @ x)[..., 0, :]
    if x_ndim > 2 and len(y_shape) == 2:  # a stack times one matrix: the stack's rows, summed in one product
        rows = math.prod(x.shape[:-1])
        return _mT(xp, xp.reshape(x, (rows, y_shape[0]))) @ xp.reshape(g, (rows, y_shape[1]))
    return _mT(xp, x) @ g


# --- einsum: explicit subscripts, each operand's rule is one more einsum -----------------

def _parse(subscripts: str, n: int):
    if "..." in subscripts:
        raise NotImplementedError("einsum with '...' is not in diffkit's table; write the batch axes out as letters")
    ins, _, out = subscripts.replace(" ", "").partition("->")
    terms = ins.split(",")
    if len(terms) != n:
        raise ValueError(f"einsum subscripts {subscripts!r} name {len(terms)} operands; {n} were given")
    if "->" not in subscripts:
        letters = "".join(terms)
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    for t in terms:
        if len(set(t)) != len(t):
            raise NotImplementedError(f"einsum term {t!r} repeats an index within one operand (a diagonal); use "
                                      f"xp.diagonal or xp.trace for that part")
    return terms, out


def _einsum_joint(g, xs, subscripts, xp):
    terms, out = _parse(subscripts, len(xs))
    grads = []
    for k, term in enumerate(terms):
        others = [(t, x) for j, (t, x) in enumerate(zip(terms, xs)) if j != k]
        present = set(out).union(*[set(t) for t, _ in others])
        kept = "".join(c for c in term if c in present)  # indices of operand k summed nowhere else
        spec = ",".join([out] + [t for t, _ in others]) + "->" + kept
        part = xp.einsum(spec, g, *[x for _, x in others])
        if kept != term:  # broadcast along the indices that only operand k had
            shape = tuple(xs[k].shape[i] if c in present else 1 for i, c in enumerate(term))
            part = xp.broadcast_to(xp.reshape(part, shape), xs[k].shape)
        grads.append(part)
    return tuple(grads)


# --- the matrix functions on object arrays (mpmath, SymPy), one matrix at a time -----------

def _batched(fn, A, *rest):
    A = np.asarray(A, dtype=object)
    if A.ndim == 2:
        return fn(A, *rest)
    out = [_batched(fn, A[i], *[r[i] for r in rest]) for i in range(A.shape[0])]
    return np.array(out, dtype=object)


def _per_matrix(to_matrix, matrix_type, fn):
    """``fn`` on one backend matrix at a time (leading axes are batches), results back as object arrays."""
    def run(A, *rest):
        def one(a, *r):
            res = fn(to_matrix(a.tolist()), *[to_matrix(np.asarray(x, dtype=object).tolist()) for x in r])
            return np.array(res.tolist(), dtype=object) if isinstance(res, matrix_type()) else res
        return _batched(one, A, *rest)
    return run


def _mp(fn):
    return _per_matrix(mpmath.matrix, lambda: mpmath.matrix, fn)


def _sym(fn):
    return _per_matrix(lambda rows: sympy.Matrix(rows), lambda: sympy.MatrixBase, fn)  # (SymPy loads on use)


def _vector_rhs(fn):
    """A solve whose right-hand side may be one vector (numpy 2's rule: b.ndim == 1)."""
    def run(A, b, **params):
        if np.ndim(b) == 1:  # one column, for every matrix of a stack A
            col = np.asarray(b, dtype=object).reshape(-1, 1)
            return fn(A, np.broadcast_to(col, np.shape(A)[:-2] + col.shape), **params)[..., 0]
        return fn(A, b, **params)
    return run


def _mp_logabsdet(A):
    return _mp(lambda a: mpmath.log(abs(mpmath.det(a))))(A)


def _mp_cholesky(A, upper=False):
    L = _mp(mpmath.cholesky)(A)
    return np.swapaxes(L, -1, -2) if upper else L


def _mp_lu_solve(a, b):
    """One solve per column of b (mpmath's lu_solve takes one right-hand side)."""
    cols = [mpmath.lu_solve(a, b.column(j)) for j in range(b.cols)]
    return mpmath.matrix([[c[i] for c in cols] for i in range(a.rows)])


def _read_triangle(fn):
    """Only the named triangle of x is read, as scipy's solve_triangular does."""
    return lambda x, y, lower=False: fn(_tri(np.tril if lower else np.triu)(x), y)


def _sym_cholesky(A, upper=False):
    L = _sym(lambda a: a.cholesky(hermitian=False))(A)
    return np.swapaxes(L, -1, -2) if upper else L


# --- rules ---------------------------------------------------------------------------------

def _transposed_solve(solve, x, g, y, xp, **kw):
    """x^-T g; a vector y (numpy 2's rule: y.ndim == 1) gives one vector g per matrix of a stack x, which a
    solve would read as a matrix: it is solved as one column each."""
    if len(y.shape) == 1 and len(x.shape) > 2:
        return solve(_mT(xp, x), xp.expand_dims(g, axis=-1), **kw)[..., 0]
    return solve(_mT(xp, x), g, **kw)


def _solve_vjps():
    def for_b(g, ans, x, y, xp):
        return _transposed_solve(xp.linalg.solve, x, g, y, xp)

    def for_a(g, ans, x, y, xp):
        gb = _transposed_solve(xp.linalg.solve, x, g, y, xp)
        if len(y.shape) == 1:
            return -xp.expand_dims(gb, axis=-1) * xp.expand_dims(ans, axis=-2)
        return -(gb @ _mT(xp, ans))
    return for_a, for_b


def _solve_jvp(xp, ans, inputs, tangents):
    a, b = inputs
    ta, tb = tangents
    rhs = 0.0
    if tb is not None:
        rhs = tb
    if ta is not None:
        prod = ta @ ans
        rhs = rhs - prod
    return xp.linalg.solve(a, rhs)


def _columns(jvp):
    """A solve's JVP where a stack of matrices meets one vector right-hand side: one column per matrix (as in
    :func:`_transposed_solve`; a solve would read the stack of tangent vectors as a matrix)."""
    def run(xp, ans, inputs, tangents, **params):
        a, b = inputs
        if len(b.shape) == 1 and len(a.shape) > 2:
            col = lambda v: None if v is None else xp.expand_dims(v, axis=-1)  # noqa: E731
            return jvp(xp, col(ans), (a, col(b)), (tangents[0], col(tangents[1])), **params)[..., 0]
        return jvp(xp, ans, inputs, tangents, **params)
    return run


def _phi(xp, a):
    """The lower triangle with its diagonal halved (Murray 2016)."""
    return xp.tril(a) - 0.5 * a * xp.eye(a.shape[-1])


def _cholesky_vjp(g, ans, xp, upper):
    L = _mT(xp, ans) if upper else ans
    gl = _mT(xp, g) if upper else g
    inner = _phi(xp, _mT(xp, L) @ gl)
    s = xp.linalg.solve_triangular(_mT(xp, L), _mT(xp, xp.linalg.solve_triangular(_mT(xp, L), _mT(xp, inner),
                                                                                   lower=False)), lower=False)
    return 0.5 * (s + _mT(xp, s))


def _cholesky_jvp(xp, ans, inputs, tangents, upper=False):
    L = _mT(xp, ans) if upper else ans
    t = (tangents[0] + _mT(xp, tangents[0])) / 2  # the symmetric part, as the VJP's convention (x is symmetric)
    inner = xp.linalg.solve_triangular(L, _mT(xp, xp.linalg.solve_triangular(L, t, lower=True)), lower=True)
    dl = L @ _phi(xp, _mT(xp, inner))
    return _mT(xp, dl) if upper else dl


def _triangle(xp, a, lower):
    return xp.tril(a) if lower else xp.triu(a)


def _solve_triangular_vjps():
    def for_a(g, ans, x, y, xp, lower):
        gb = _transposed_solve(xp.linalg.solve_triangular, x, g, y, xp, lower=not lower)
        if len(y.shape) == 1:
            return -_triangle(xp, xp.expand_dims(gb, axis=-1) * xp.expand_dims(ans, axis=-2), lower)
        return -_triangle(xp, gb @ _mT(xp, ans), lower)

    def for_b(g, x, y, xp, lower):
        return _transposed_solve(xp.linalg.solve_triangular, x, g, y, xp, lower=not lower)
    return for_a, for_b


def _solve_triangular_jvp(xp, ans, inputs, tangents, lower=False):
    a, b = inputs
    ta, tb = tangents
    rhs = tb if tb is not None else 0.0
    if ta is not None:  # only the triangle of x is read, so only that part of its tangent counts
        ta = _triangle(xp, ta, lower)
        rhs = rhs - (ta @ ans if len(b.shape) > 1 else xp.sum(ta * ans, axis=-1))
    return xp.linalg.solve_triangular(a, rhs, lower=lower)


def _norm_vjp(g, ans, x, xp, axis, keepdims):
    from .reductions import expand
    scale = g / xp.where(ans == 0, np.inf, ans)  # the convention at x = 0: g / inf = 0
    return expand(scale, xp, x.shape, axis, keepdims) * x


def _norm_jvp(xp, ans, inputs, tangents, axis=None, keepdims=False):
    zero = ans == 0
    s = xp.sum(inputs[0] * tangents[0], axis=axis, keepdims=keepdims)
    return xp.where(zero, 0.0, s / xp.where(zero, 1.0, ans))


def _mp_norm(x, axis=None, keepdims=False):
    from ..backends import namespace
    xp = namespace(x)
    return xp.sqrt(xp.sum(x * x, axis=axis, keepdims=keepdims))


def _diag_index(shape, offset):
    n, m = shape[-2], shape[-1]
    rows = np.arange(max(0, -offset), min(n, m - offset))
    return rows, rows + offset


def _diagonal(x, offset=0):
    rows, cols = _diag_index(np.shape(x), offset)
    return np.asarray(x)[..., rows, cols]


def _diagonal_vjp(g, xp, x_shape, offset):
    rows, cols = _diag_index(x_shape, offset)
    return xp.at(xp.zeros(x_shape))[..., rows, cols].set(g)


def _tri(fn):
    def run(x, k=0):
        x = np.asarray(x)
        if x.dtype != object:
            return fn(x, k)
        mask = fn(np.ones(x.shape[-2:], dtype=bool), k)
        return np.where(mask, x, 0)
    return run


MATMUL_DOMAIN = Domain(shapes=(((2, 3), (3, 4)), ((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((2, 2, 3), (3, 2))))

# fmt: off
defprim("matmul", "x y", kind="array", numpy=_matmul_numpy, complex=SAME, mpmath=OBJECT,
        sympy=lambda x, y: sympy_backend.matmul(x, y),
        vjp=(lambda g, y, x_shape, xp: _matmul_x(g, y, x_shape, xp), lambda g, x, y_shape, xp: _matmul_y(g, x, y_shape, xp)),
        jvp="multilinear", domain=MATMUL_DOMAIN)
defprim("einsum", "*xs", kind="array", params={"subscripts": ""},
        api=lambda subscripts, *operands: (operands, {"subscripts": subscripts}),
        numpy=lambda *xs, subscripts: np.einsum(subscripts, *xs), complex=SAME,
        mpmath=lambda *xs, subscripts: np.einsum(subscripts, *xs, dtype=object),
        sympy=lambda *xs, subscripts: np.einsum(subscripts, *xs, dtype=object),
        joint=lambda g, xs, subscripts, xp: _einsum_joint(g, xs, subscripts, xp), jvp="multilinear",
        convention="explicit letters only: no '...', no index repeated within one operand",
        domain=Domain(shapes=(((2, 3), (3, 4)), ((3,), (3,)), ((2, 3), (2, 3))),
                      params=({"subscripts": "ij,jk->ik"}, {"subscripts": "i,i->"}, {"subscripts": "ij,ij->j"})))
defprim("diagonal", "x", kind="linear", params={"offset": 0}, numpy=_diagonal, complex=SAME, mpmath=_diagonal,
        sympy=_diagonal, vjp=lambda g, xp, x_shape, offset: _diagonal_vjp(g, xp, x_shape, offset),
        convention="the last two axes (the array API), not numpy's first two",
        domain=Domain(shapes=(((3, 3),), ((2, 3, 4),)), params=({}, {"offset": 1})))
defprim("tril", "x", kind="linear", params={"k": 0}, numpy=_tri(np.tril), complex=SAME, mpmath=_tri(np.tril),
        sympy=_tri(np.tril), vjp=lambda g, xp, k: xp.tril(g, k=k), domain=Domain(shapes=(((3, 3),), ((2, 3, 4),)), params=({}, {"k": -1})))
defprim("triu", "x", kind="linear", params={"k": 0}, numpy=_tri(np.triu), complex=SAME, mpmath=_tri(np.triu),
        sympy=_tri(np.triu), vjp=lambda g, xp, k: xp.triu(g, k=k), domain=Domain(shapes=(((3, 3),), ((2, 3, 4),)), params=({}, {"k": 1})))
defprim("det", "x", kind="array", numpy=np.linalg.det, complex=SAME, mpmath=_mp(mpmath.det),
        sympy=_sym(lambda a: a.det(method="berkowitz")),
        vjp=lambda g, ans, x, xp: xp.expand_dims(xp.expand_dims(g * ans, axis=-1), axis=-1) * _mT(xp, xp.linalg.inv(x)),
        jvp=lambda xp, ans, inputs, tangents: ans * xp.trace(xp.linalg.solve(inputs[0], tangents[0])),
        domain=SQUARE)
defprim("logabsdet", "x", kind="array", numpy=lambda x: np.linalg.slogdet(x)[1],
        complex=lambda x: np.log(np.linalg.det(x) * np.sign(np.linalg.det(np.asarray(x).real))),
        mpmath=_mp_logabsdet, sympy=_sym(lambda a: sympy.log(sympy.Abs(a.det(method="berkowitz")))),
        vjp=lambda g, x, xp: xp.expand_dims(xp.expand_dims(g, axis=-1), axis=-1) * _mT(xp, xp.linalg.inv(x)),
        jvp=lambda xp, ans, inputs, tangents: xp.trace(xp.linalg.solve(inputs[0], tangents[0])),
        doc="log|det x|: the differentiable half of slogdet", domain=SQUARE)
defprim("inv", "x", kind="array", numpy=np.linalg.inv, complex=SAME, mpmath=_mp(lambda a: a ** -1),
        sympy=_sym(lambda a: a.inv()),
        vjp=lambda g, ans, xp: -(_mT(xp, ans) @ g @ _mT(xp, ans)),
        jvp=lambda xp, ans, inputs, tangents: -(ans @ tangents[0] @ ans), domain=SQUARE)
defprim("solve", "x y", kind="array", numpy=np.linalg.solve, complex=SAME, mpmath=_vector_rhs(_mp(_mp_lu_solve)),
        sympy=_vector_rhs(_sym(lambda a, b: a.LUsolve(b))), vjp=_solve_vjps(), jvp=_columns(_solve_jvp),
        domain=Domain(-1.0, 1.0, shapes=(((3, 3), (3,)), ((3, 3), (3, 2))), matrix="square"))
defprim("cholesky", "x", kind="array", params={"upper": False},
        numpy=lambda x, upper=False: np.swapaxes(np.linalg.cholesky(x), -1, -2) if upper else np.linalg.cholesky(x),
        complex=Unsupported("the complex step of a Cholesky factor needs a complex-symmetric factorization that "
                            "numpy does not provide; use method='central' or 'reverse'"),
        mpmath=_mp_cholesky, sympy=_sym_cholesky, vjp=lambda g, ans, xp, upper: _cholesky_vjp(g, ans, xp, upper),
        jvp=_cholesky_jvp, convention="the rule returns the symmetric part (x is symmetric)", domain=SPD)
defprim("solve_triangular", "x y", kind="array", params={"lower": False},
        numpy=lambda x, y, lower=False: scipy_linalg.solve_triangular(x, y, lower=lower),
        complex=lambda x, y, lower=False: scipy_linalg.solve_triangular(x, y, lower=lower),
        mpmath=_read_triangle(_vector_rhs(_mp(_mp_lu_solve))), sympy=_read_triangle(_vector_rhs(_sym(lambda a, b: a.LUsolve(b)))),
        vjp=_solve_triangular_vjps(), jvp=_columns(_solve_triangular_jvp),
        convention="scipy's signature: upper triangular unless lower=True; only that triangle of x is read",
        domain=Domain(-1.0, 1.0, shapes=(((3, 3), (3,)), ((3, 3), (3, 2))), matrix="triangular", params=({"lower": True},)))
defprim("vector_norm", "x", kind="array", params={"axis": None, "keepdims": False},
        numpy=lambda x, axis=None, keepdims=False: np.sqrt(np.sum(np.square(x), axis=axis, keepdims=keepdims)),
        complex=lambda x, axis=None, keepdims=False: np.sqrt(np.sum(np.asarray(x) ** 2, axis=axis, keepdims=keepdims)),
        mpmath=_mp_norm, sympy=_mp_norm, vjp=_norm_vjp, jvp=_norm_jvp, convention="gradient 0 at x = 0",
        doc="the 2-norm (Frobenius for matrices with axis=None)",
        domain=Domain(shapes=(((4,),), ((2, 3),)), params=({}, {"axis": -1})))
# fmt: on
