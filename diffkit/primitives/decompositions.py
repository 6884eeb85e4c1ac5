"""Matrix decompositions: the symmetric eigenproblem, the SVD and QR, one primitive per output.

``xp.linalg.eigh``, ``svd`` and ``qr`` (composed in :mod:`diffkit.backends`)
return their factors from these primitives, each with its own rule, so a
function that uses one factor pays for that factor's rule alone, and the rules
of several add up to the joint rule.  A rule that needs another factor
recomputes it (through the table, so the rule can itself be differentiated).

Rules (real matrices; Giles 2008 for the eigenproblem, Townsend 2016
"Differentiating the singular value decomposition", Walter and Lehmann 2018
for QR): with ``F_ij = 1 / (w_j - w_i)`` (``i != j``, 0 on the diagonal),

* ``eigvalsh``: ``dA -> diag(V^T dA V)``, so ``g -> V diag(g) V^T``;
* ``eigvecsh``: ``dV = V (F o (V^T dA V))``;
* ``svdvals``: ``g -> U diag(g) V^T``; ``svd_u``/``svd_vh``: Townsend's
  rules with ``F`` over the squared singular values, including the parts
  outside the span of U or V for a non-square matrix;
* ``qr_q``/``qr_r``: ``A-bar = (Q-bar + Q copyltu(M)) R^-T``,
  ``M = R R-bar^T - Q-bar^T Q``.

Conventions (each factor is made a function of the matrix, so that every
backend returns the same one and its derivative exists):

* eigenvalues ascending, singular values descending (the array API's order);
* each eigenvector, and each left singular vector, has its entry of largest
  magnitude positive (the first such entry on ties); the matching right
  singular vector follows its sign;
* R has a positive diagonal (the unique QR of a full-rank matrix);
* ``eigh`` reads a symmetric matrix, and its rules return symmetric
  gradients (the symmetric part, as for Cholesky);
* the SVD and QR are the reduced ones; QR's derivative needs rows >= columns;
* repeated eigenvalues or singular values (and a zero singular value, for
  the singular vectors) have no derivative: the rule divides by the gap and
  gives inf or nan, as JAX and PyTorch do.

The complex step cannot take these: LAPACK's iterations measure vectors by
``|z|``, which is not analytic, so the imaginary parts lose the step.
"""
from __future__ import annotations

import mpmath
import numpy as np

from .linalg import _batched, _mT
from .table import Domain, NotAnalytic, Unsupported, defprim

SYMMETRIC = Domain(-1.0, 1.0, shapes=(((3, 3),), ((2, 3, 3),)), matrix="spd")
ANY_MATRIX = Domain(-1.0, 1.0, shapes=(((3, 3),), ((4, 3),), ((3, 4),), ((2, 4, 3),)))
TALL = Domain(-1.0, 1.0, shapes=(((3, 3),), ((4, 3),), ((2, 4, 3),)))

_NOT_ANALYTIC = NotAnalytic("LAPACK's eigen-, singular-value and QR iterations measure vectors by |z|, which is not "
                            "analytic, so the complex step's imaginary part is lost; use method='reverse', "
                            "'forward_ad' or 'central'")
_NO_SYMPY = Unsupported("SymPy's closed forms of eigen- and singular values are roots of polynomials, unusable past "
                        "2 x 2; use a numeric method")


# --- the sign conventions, on numpy float and object arrays alike --------------------------------------------

def _column_signs(V):
    """+1 or -1 per column (shape ``(..., 1, k)``): the sign of each column's entry of largest magnitude."""
    V = np.asarray(V)
    at = np.argmax(np.abs(V), axis=-2)[..., None, :]
    return np.where(np.take_along_axis(V, at, axis=-2) < 0, -1, 1)


def _eigh(A):
    w, V = np.linalg.eigh(A)
    return w, V * _column_signs(V)


def _svd(A):
    U, s, Vh = np.linalg.svd(A, full_matrices=False)
    signs = _column_signs(U)
    return U * signs, s, Vh * np.swapaxes(signs, -1, -2)


def _qr(A):
    Q, R = np.linalg.qr(A)
    d = np.where(np.diagonal(R, axis1=-2, axis2=-1) < 0, -1, 1)
    return Q * d[..., None, :], R * d[..., :, None]


# --- mpmath: one matrix at a time, in the same order and signs ------------------------------------------------

def _mp_rows(m) -> np.ndarray:
    return np.array(m.tolist(), dtype=object)


def _mp_eigh_one(a):
    E, Q = mpmath.eigsy(mpmath.matrix(a.tolist()))
    order = sorted(range(len(E)), key=lambda i: E[i])
    V = _mp_rows(Q)[:, order]
    return np.array([E[i] for i in order], dtype=object), V * _column_signs(V)


def _mp_svd_one(a):
    U, S, Vh = mpmath.svd_r(mpmath.matrix(a.tolist()), full_matrices=False)
    order = sorted(range(len(S)), key=lambda i: -S[i])
    U, Vh = _mp_rows(U)[:, order], _mp_rows(Vh)[order, :]
    signs = _column_signs(U)
    return U * signs, np.array([S[i] for i in order], dtype=object), Vh * signs.T


def _mp_qr_one(a):
    Q, R = mpmath.qr(mpmath.matrix(a.tolist()), mode="skinny")
    Q, R = _mp_rows(Q), _mp_rows(R)
    d = np.where(np.diagonal(R) < 0, -1, 1)
    return Q * d[None, :], R * d[:, None]


def _mp_part(one, k):
    return lambda A: _batched(lambda a: one(a)[k], A)


# --- rules ------------------------------------------------------------------------------------------------------

def _sym(xp, a):
    return 0.5 * (a + _mT(xp, a))


def _inverse_gaps(xp, w):
    """``F_ij = 1 / (w_j - w_i)`` off the diagonal, 0 on it (w: the last axis)."""
    gaps = xp.expand_dims(w, axis=-2) - xp.expand_dims(w, axis=-1)
    return 1.0 / xp.where(xp.eye(w.shape[-1]) == 1, np.inf, gaps)  # (1 / inf: the diagonal's 0)


def _eigvalsh_vjp(g, x, xp):
    V = xp.linalg.eigvecsh(x)
    return (V * xp.expand_dims(g, axis=-2)) @ _mT(xp, V)


def _eigvalsh_jvp(xp, ans, inputs, tangents):
    V = xp.linalg.eigvecsh(inputs[0])
    return xp.sum(V * (_sym(xp, tangents[0]) @ V), axis=-2)


def _eigvecsh_vjp(g, ans, x, xp):
    F = _inverse_gaps(xp, xp.linalg.eigvalsh(x))
    return _sym(xp, ans @ (F * (_mT(xp, ans) @ g)) @ _mT(xp, ans))


def _eigvecsh_jvp(xp, ans, inputs, tangents):
    F = _inverse_gaps(xp, xp.linalg.eigvalsh(inputs[0]))
    return ans @ (F * (_mT(xp, ans) @ _sym(xp, tangents[0]) @ ans))


def _svdvals_vjp(g, x, xp):
    return (xp.linalg.svd_u(x) * xp.expand_dims(g, axis=-2)) @ xp.linalg.svd_vh(x)


def _svdvals_jvp(xp, ans, inputs, tangents):
    U, Vh = xp.linalg.svd_u(inputs[0]), xp.linalg.svd_vh(inputs[0])
    return xp.sum(U * (tangents[0] @ _mT(xp, Vh)), axis=-2)


def _svd_u_vjp(g, ans, x, xp):
    U, s, Vh = ans, xp.linalg.svdvals(x), xp.linalg.svd_vh(x)
    F = _inverse_gaps(xp, s * s)
    inside = U @ ((F * (_mT(xp, U) @ g - _mT(xp, g) @ U)) * xp.expand_dims(s, axis=-2)) @ Vh
    if x.shape[-2] == s.shape[-1]:  # U is square: nothing outside its span
        return inside
    scaled = g / xp.expand_dims(s, axis=-2)
    return inside + (scaled - U @ (_mT(xp, U) @ scaled)) @ Vh


def _svd_vh_vjp(g, ans, x, xp):
    Vh, s, U = ans, xp.linalg.svdvals(x), xp.linalg.svd_u(x)
    F = _inverse_gaps(xp, s * s)
    inside = U @ (xp.expand_dims(s, axis=-1) * (F * (Vh @ _mT(xp, g) - g @ _mT(xp, Vh)))) @ Vh
    if x.shape[-1] == s.shape[-1]:  # V is square
        return inside
    return inside + U @ ((g - (g @ _mT(xp, Vh)) @ Vh) / xp.expand_dims(s, axis=-1))


def _svd_tangent_parts(xp, x, t):
    U, s, Vh = xp.linalg.svd_u(x), xp.linalg.svdvals(x), xp.linalg.svd_vh(x)
    V = _mT(xp, Vh)
    dP = _mT(xp, U) @ t @ V
    return U, s, V, dP, _inverse_gaps(xp, s * s)


def _svd_u_jvp(xp, ans, inputs, tangents):
    x, t = inputs[0], tangents[0]
    U, s, V, dP, F = _svd_tangent_parts(xp, x, t)
    du = U @ (F * (dP * xp.expand_dims(s, axis=-2) + xp.expand_dims(s, axis=-1) * _mT(xp, dP)))
    if x.shape[-2] == s.shape[-1]:
        return du
    tv = t @ V
    return du + (tv - U @ (_mT(xp, U) @ tv)) / xp.expand_dims(s, axis=-2)


def _svd_vh_jvp(xp, ans, inputs, tangents):
    x, t = inputs[0], tangents[0]
    U, s, V, dP, F = _svd_tangent_parts(xp, x, t)
    dv = V @ (F * (xp.expand_dims(s, axis=-1) * dP + _mT(xp, dP) * xp.expand_dims(s, axis=-2)))
    if x.shape[-1] != s.shape[-1]:
        tu = _mT(xp, t) @ U
        dv = dv + (tu - V @ (_mT(xp, V) @ tu)) / xp.expand_dims(s, axis=-2)
    return _mT(xp, dv)


def _tall(x, op: str) -> None:
    rows, columns = x.shape[-2:]
    if rows < columns:
        raise NotImplementedError(f"{op}: the derivative of QR needs at least as many rows as columns (got "
                                  f"{tuple(x.shape)}); a wide matrix's Q and R are not smooth functions of all its "
                                  f"entries. Differentiate the QR of the transpose (an LQ) instead")


def _copyltu(xp, m):
    return xp.tril(m) + _mT(xp, xp.tril(m, k=-1))


def _times_inverse_rt(xp, b, r):
    """b R^-T, by one triangular solve: R X^T = b^T."""
    return _mT(xp, xp.linalg.solve_triangular(r, _mT(xp, b), lower=False))


def _qr_q_vjp(g, ans, x, xp):
    _tall(x, "qr")
    Q, R = ans, xp.linalg.qr_r(x)
    return _times_inverse_rt(xp, g - Q @ _copyltu(xp, _mT(xp, g) @ Q), R)


def _qr_r_vjp(g, ans, x, xp):
    _tall(x, "qr")
    R, Q = ans, xp.linalg.qr_q(x)
    return _times_inverse_rt(xp, Q @ _copyltu(xp, R @ _mT(xp, g)), R)


def _qr_tangent_parts(xp, x, t):
    """``t R^-1`` and ``X - Omega`` (upper triangular), where ``X = Q^T t R^-1`` and Omega its antisymmetric
    strictly-lower part: ``dR = (X - Omega) R`` and ``dQ = t R^-1 - Q (X - Omega)``."""
    _tall(x, "qr")
    Q, R = xp.linalg.qr_q(x), xp.linalg.qr_r(x)
    t_rinv = _mT(xp, xp.linalg.solve_triangular(_mT(xp, R), _mT(xp, t), lower=True))
    X = _mT(xp, Q) @ t_rinv
    lower = xp.tril(X, k=-1)
    return Q, R, t_rinv, X - lower + _mT(xp, lower)


def _qr_q_jvp(xp, ans, inputs, tangents):
    Q, _, t_rinv, upper = _qr_tangent_parts(xp, inputs[0], tangents[0])
    return t_rinv - Q @ upper


def _qr_r_jvp(xp, ans, inputs, tangents):
    _, R, _, upper = _qr_tangent_parts(xp, inputs[0], tangents[0])
    return upper @ R


_SIGNS = "each vector's entry of largest magnitude is positive (the first on ties)"

# fmt: off
defprim("eigvalsh", "x", kind="array", numpy=np.linalg.eigvalsh, complex=_NOT_ANALYTIC,
        mpmath=_mp_part(_mp_eigh_one, 0), sympy=_NO_SYMPY, vjp=_eigvalsh_vjp, jvp=_eigvalsh_jvp, domain=SYMMETRIC,
        convention="ascending; x is symmetric and the rule returns a symmetric gradient; repeated eigenvalues: "
                   "the sum is smooth, each one is not",
        doc="the eigenvalues of a symmetric matrix (the array API's linalg.eigvalsh)")
defprim("eigvecsh", "x", kind="array", numpy=lambda x: _eigh(x)[1], complex=_NOT_ANALYTIC,
        mpmath=_mp_part(_mp_eigh_one, 1), sympy=_NO_SYMPY, vjp=_eigvecsh_vjp, jvp=_eigvecsh_jvp, domain=SYMMETRIC,
        convention=f"columns in eigvalsh's order; {_SIGNS}; no derivative at a repeated eigenvalue (inf/nan)",
        doc="the eigenvectors of a symmetric matrix, as columns (linalg.eigh's second output)")
defprim("svdvals", "x", kind="array", numpy=lambda x: np.linalg.svd(x, compute_uv=False), complex=_NOT_ANALYTIC,
        mpmath=_mp_part(_mp_svd_one, 1), sympy=_NO_SYMPY, vjp=_svdvals_vjp, jvp=_svdvals_jvp, domain=ANY_MATRIX,
        convention="descending; no derivative where two coincide (their sum is smooth)",
        doc="the singular values (the array API's linalg.svdvals)")
defprim("svd_u", "x", kind="array", numpy=lambda x: _svd(x)[0], complex=_NOT_ANALYTIC,
        mpmath=_mp_part(_mp_svd_one, 0), sympy=_NO_SYMPY, vjp=_svd_u_vjp, jvp=_svd_u_jvp, domain=ANY_MATRIX,
        convention=f"the reduced SVD's U, columns in svdvals' order; {_SIGNS}; no derivative at a repeated or zero "
                   f"singular value",
        doc="the left singular vectors (linalg.svd's first output, full_matrices=False)")
defprim("svd_vh", "x", kind="array", numpy=lambda x: _svd(x)[2], complex=_NOT_ANALYTIC,
        mpmath=_mp_part(_mp_svd_one, 2), sympy=_NO_SYMPY, vjp=_svd_vh_vjp, jvp=_svd_vh_jvp, domain=ANY_MATRIX,
        convention="the reduced SVD's V^T, rows in svdvals' order, each row's sign that of U's column",
        doc="the right singular vectors as rows (linalg.svd's third output, full_matrices=False)")
defprim("qr_q", "x", kind="array", numpy=lambda x: _qr(x)[0], complex=_NOT_ANALYTIC,
        mpmath=_mp_part(_mp_qr_one, 0), sympy=_NO_SYMPY, vjp=_qr_q_vjp, jvp=_qr_q_jvp, domain=TALL,
        convention="the reduced QR with R's diagonal positive; differentiable for rows >= columns at full rank",
        doc="Q of the reduced QR (linalg.qr's first output)")
defprim("qr_r", "x", kind="array", numpy=lambda x: _qr(x)[1], complex=_NOT_ANALYTIC,
        mpmath=_mp_part(_mp_qr_one, 1), sympy=_NO_SYMPY, vjp=_qr_r_vjp, jvp=_qr_r_jvp, domain=TALL,
        convention="the reduced QR with R's diagonal positive; differentiable for rows >= columns at full rank",
        doc="R of the reduced QR (linalg.qr's second output)")
# fmt: on
